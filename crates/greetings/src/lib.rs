//! Greeting pictures (not yet built).
