//! Understanding of request and response payloads: formats, modality, Magma
//! task, response parsing and features. Scanners here run incrementally over
//! the chunks as they stream through the proxy.
