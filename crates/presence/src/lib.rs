//! Presence (not yet built).
