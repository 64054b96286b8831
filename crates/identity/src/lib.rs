//! Signed caller identity (not yet built).
