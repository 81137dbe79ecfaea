//! The one integration-test binary of the workspace. Each module covers one
//! area and runs real parts: Delta tables on disk, the `stroom` binary, and
//! the reference Python packages (`h3`, `deltalake`, `utilsforecast` through
//! its fixture) where a test compares.

mod alerts;
mod api;
mod attribution;
mod bad_input;
mod cli;
mod cluster;
mod crash;
mod forecast;
mod fuzz;
mod h3_reference;
mod ingest;
mod maps;
mod nowcast;
mod privacy;
mod query;
mod routes;
mod s3;
mod scenarios;
mod simulator;
mod support;
mod uploads;
