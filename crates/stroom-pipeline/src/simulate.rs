//! Simulation with the shipped data: the real UK arrivals drive the
//! Channel route unless asked otherwise.

use std::path::Path;

use stroom_core::Route;
use stroom_sim::{RealArrivals, SimParams, SimReport};

use crate::error::Result;

/// The shipped real UK small-boat arrivals (Home Office via The National,
/// CC BY 4.0): columns `full_date`, `migrants_arrived`.
pub const UK_ARRIVALS: &str = include_str!("../../../data/arrivals/uk_small_boats_daily.csv");

/// Simulates `params` on `routes` into `out`. Unless `synthetic_channel`,
/// a route with id `channel` follows the real UK arrivals from
/// `params.start`. `progress` is called with the days written so far.
pub fn simulate(
    params: &SimParams,
    routes: &[Route],
    synthetic_channel: bool,
    out: &Path,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<SimReport> {
    let mut params = params.clone();
    let real = if !synthetic_channel && routes.iter().any(|r| r.id == "channel") {
        params.real_arrivals_route = Some("channel".into());
        Some(RealArrivals::from_csv(
            UK_ARRIVALS,
            "full_date",
            "migrants_arrived",
            "channel",
            params.start,
            params.days as usize,
        )?)
    } else {
        params.real_arrivals_route = None;
        None
    };
    Ok(stroom_sim::simulate(&params, routes, real.as_ref(), out, progress)?)
}
