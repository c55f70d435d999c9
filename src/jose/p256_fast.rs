//! (placeholder, being written) Fast variable-time P-256 ECDSA verification for wasm32.
