//! (placeholder, being written) Fast variable-time RSA verification for wasm32.
