//! Integration tests, built into one binary. Real parts only: GStreamer on real clips, ONNX
//! Runtime on the real model, mosquitto on a free loopback port, an RTSP server on loopback.
//! Nothing here sleeps to wait for something: waits are on conditions, with deadlines.

mod backpressure;
mod bad_input;
mod browser;
mod commands;
mod common;
mod config;
mod cores;
mod detect;
mod discovery;
mod docs;
mod fleet;
mod install;
mod layout;
mod metrics;
mod mjpeg;
mod models;
mod mqtt_auth;
mod mqtt_e2e;
mod mqtt_tls;
mod onnx;
mod openvino;
mod providers;
mod reference;
mod reload;
mod remote;
mod rtsp;
mod schema;
mod snapshots;
mod spool;
mod supervise;
mod systemd;
mod toggles;
mod uint8_input;
mod variant;
mod web;
