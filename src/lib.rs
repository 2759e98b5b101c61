//! Lookout: video analytics for edge camera gateways.
//!
//! # Layout
//!
//! Frames flow source → detect → objects (filters, tracker, lifecycle, rules) → publish; each
//! stage is a module that owns its settings, its loop and its pure core. The map of every
//! module, in the order they may import each other, is `docs/architecture.md` ("Layout"); the
//! tests hold the code to it (`tests/it/layout.rs`, `tests/it/docs.rs`).
//!
//! Threads and bounded channels only: no async runtime in the stages (the `web` thread runs its
//! own, for HTTP). GStreamer's streaming threads belong to GStreamer; every other thread is
//! ours, named, and exits on the shutdown signal.

pub mod annotate;
pub mod batch;
pub mod bench;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod detect;
pub mod link;
pub mod logfmt;
pub mod metrics;
pub mod notify;
pub mod objects;
pub mod pipeline;
pub mod publish;
pub mod reload;
pub mod remote;
pub mod resize;
pub mod rules;
pub mod shutdown;
pub mod source;
pub mod stats;
pub mod supervisor;
pub mod text;
pub mod toggles;
pub mod track;
pub mod view;
pub mod web;
