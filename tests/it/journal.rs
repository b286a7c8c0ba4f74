//! Crash safety and resume (filled in below).
