// JSONValue, its parser and writers live in the JSON module, the lowest layer, so that the
// backends in LLM (which may not import Pipeline) share them. Pipeline users see them as before.
@_exported import JSON
// Likewise the one lock type and thread spawner (Threading).
@_exported import Threading
