// The project's lock and threads (Lock, Condition, Threads, Parallel) live in Threading, the
// lowest layer beside JSON, so that every module shares one of each.
@_exported import Threading
