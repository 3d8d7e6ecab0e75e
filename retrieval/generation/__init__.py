"""Answer generators behind one port: extractive (no model), llama.cpp, OpenAI-compatible."""
