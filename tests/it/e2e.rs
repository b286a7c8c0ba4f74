//! End to end against a real llama.cpp server (filled in below).
