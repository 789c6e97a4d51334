// LLM: model and retriever backends (issue 4).
