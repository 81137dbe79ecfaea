//! The flow model: departures at each route's origin, groups moving segment
//! by segment with random travel times, queues at borders and staging areas,
//! a border closure that holds people back and diverts some of them, and
//! official registrations with under-registration and reporting delay.
//!
//! Daily departures are negative binomial (gamma-Poisson overdispersed)
//! around a seasonal mean, with bursts of one to three days. Groups
//! (`Cohort`s) travel a segment in a random number of days. At stations,
//! border crossings are limited by a capacity, staging areas release a
//! share of those waiting each day (`staging_release_share`), and sea legs
//! close on rough days (an AR(1) sea state). A route driven by
//! [`RealArrivals`] is scheduled backwards instead: each day's observed
//! arrivals become groups whose travel times and staging waits are drawn as
//! in the forward model, so that upstream presence leads the real series.
//!
//! Time is in whole days here (day 0 is the first simulated day); the density
//! model spreads people over the hours of each day.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use stroom_core::{Route, SegmentMode, StationRole};

use crate::rng::Rng;

/// Parameters of the flow model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FlowParams {
    /// Mean daily departures per route id; other routes use the default.
    pub departures_per_day: BTreeMap<String, f64>,
    pub default_departures_per_day: f64,
    /// Relative amplitude of the yearly cycle of departures.
    pub seasonal_amplitude: f64,
    /// Day of the year on which departures peak (summer).
    pub peak_day_of_year: f64,
    /// Gamma shape of the day-to-day overdispersion of departures.
    pub dispersion: f64,
    /// Daily probability that a burst starts, and its multiplier; a burst lasts 1-3 days.
    pub burst_probability: f64,
    pub burst_factor: f64,
    /// Overland progress per day, km; a sea leg takes one day.
    pub land_speed_km_per_day: f64,
    /// Daily crossing capacity at a border, as a multiple of the route's mean departures.
    pub border_capacity_factor: f64,
    /// Share of the people waiting in a staging area who move on each day.
    pub staging_release_share: f64,
    /// Sea state is an AR(1) process; a sea leg is crossed on days when it is
    /// below this threshold (higher in summer, see `sea_summer_bonus`).
    pub sea_calm_threshold: f64,
    pub sea_summer_bonus: f64,
    /// Probability that a migrant carries a phone that the provider counts.
    pub phone_share: f64,
    /// Share of arrivals that official statistics register.
    pub registration_rate: f64,
    /// Shares of registrations that appear 0, 1, 2, … days after the arrival.
    pub reporting_delay_shares: Vec<f64>,
    /// A border closure, if any.
    pub closure: Option<Closure>,
}

/// A border closure: nobody crosses `station` on `route` for `days` days from
/// `start_day`; each day a share of those waiting gives up on the route and
/// reappears at the origin of `divert_to` two days later.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Closure {
    pub route: String,
    pub station: String,
    pub start_day: u32,
    pub days: u32,
    pub divert_to: String,
    pub divert_share_per_day: f64,
}

impl Default for FlowParams {
    fn default() -> Self {
        Self {
            departures_per_day: BTreeMap::from([
                ("western-balkans".to_owned(), 150.0),
                ("central-mediterranean".to_owned(), 220.0),
                ("eastern-land-border".to_owned(), 60.0),
                ("channel".to_owned(), 90.0),
            ]),
            default_departures_per_day: 100.0,
            seasonal_amplitude: 0.6,
            peak_day_of_year: 200.0,
            dispersion: 4.0,
            burst_probability: 0.03,
            burst_factor: 2.5,
            land_speed_km_per_day: 70.0,
            border_capacity_factor: 2.5,
            staging_release_share: 0.5,
            sea_calm_threshold: 0.3,
            sea_summer_bonus: 0.8,
            phone_share: 0.8,
            registration_rate: 0.9,
            reporting_delay_shares: vec![0.6, 0.3, 0.1],
            closure: Some(Closure {
                route: "western-balkans".into(),
                station: "horgos".into(),
                start_day: 300,
                days: 45,
                divert_to: "central-mediterranean".into(),
                divert_share_per_day: 0.05,
            }),
        }
    }
}

/// A group of people who entered a segment together and leave it together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Cohort {
    pub(crate) route: usize,
    pub(crate) segment: usize,
    /// Day on which the group entered the segment (may be negative for the
    /// real-data mode, whose groups set off before the first simulated day).
    pub(crate) entered: i32,
    /// Day on which the group reaches the segment's end station.
    pub(crate) exits: i32,
    pub(crate) people: u32,
    pub(crate) phones: u32,
}

/// True movements of one segment on one day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SegmentDay {
    pub entered: u64,
    pub exited: u64,
    /// People inside the segment at the end of the day.
    pub in_transit: u64,
    /// People waiting at the segment's start station at the end of the day.
    pub waiting_at_start: u64,
}

/// Totals of one route over the whole simulation, for conservation checks:
/// `departures + diverted_in = arrived + in_transit_end + waiting_end + diverted_out`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteTotals {
    pub departures: u64,
    pub diverted_in: u64,
    pub diverted_out: u64,
    pub arrived: u64,
    pub in_transit_end: u64,
    pub waiting_end: u64,
    /// Whether the route is driven by real arrivals (then departures count
    /// only groups that set off within the simulated period).
    pub real_arrivals: bool,
}

/// Everything the flow model decided.
#[derive(Debug)]
pub(crate) struct Flows {
    pub(crate) cohorts: Vec<Cohort>,
    /// Cohort indices present in a segment on each day.
    pub(crate) active: Vec<Vec<u32>>,
    /// (people, phones) waiting at [route][station][day] (end of day).
    pub(crate) waiting: Vec<Vec<Vec<(u32, u32)>>>,
    /// True arrivals at [route][station][day].
    pub(crate) station_arrivals: Vec<Vec<Vec<u32>>>,
    /// [route][segment][day].
    pub(crate) segment_days: Vec<Vec<Vec<SegmentDay>>>,
    pub(crate) totals: Vec<RouteTotals>,
    /// Mean travel days per [route][segment].
    pub(crate) mean_days: Vec<Vec<u32>>,
}

/// Daily arrivals at a route's destination, from real statistics.
#[derive(Debug, Clone)]
pub struct RealArrivals {
    pub route: String,
    /// Arrivals for day 0, 1, … (None: no published figure).
    pub daily: Vec<Option<u32>>,
}

struct RouteShape {
    /// Outgoing segment of each station.
    outgoing: Vec<Option<usize>>,
    /// Station index of each segment's start and end.
    from: Vec<usize>,
    to: Vec<usize>,
    /// Stations, upstream first (by number of segments to the destination, descending).
    order: Vec<usize>,
    origins: Vec<usize>,
}

fn shape(route: &Route) -> RouteShape {
    let index =
        |id: &str| route.stations.iter().position(|s| s.id == id).expect("a validated route names known stations");
    let from: Vec<usize> = route.segments.iter().map(|s| index(&s.from)).collect();
    let to: Vec<usize> = route.segments.iter().map(|s| index(&s.to)).collect();
    let mut outgoing = vec![None; route.stations.len()];
    for (segment, &station) in from.iter().enumerate() {
        outgoing[station] = Some(segment);
    }
    let depth = |mut station: usize| {
        let mut steps = 0;
        while let Some(segment) = outgoing[station] {
            station = to[segment];
            steps += 1;
        }
        steps
    };
    let mut order: Vec<usize> = (0..route.stations.len()).collect();
    order.sort_by_key(|&s| std::cmp::Reverse(depth(s)));
    let origins = (0..route.stations.len()).filter(|&s| route.stations[s].role == StationRole::Origin).collect();
    RouteShape { outgoing, from, to, order, origins }
}

fn segment_length_km(route: &Route, segment: usize) -> f64 {
    route.segments[segment]
        .waypoints
        .windows(2)
        .map(|w| match (h3o::LatLng::new(w[0].0, w[0].1), h3o::LatLng::new(w[1].0, w[1].1)) {
            (Ok(a), Ok(b)) => a.distance_km(b),
            _ => 0.0,
        })
        .sum()
}

/// Mean travel days of every segment of a route.
pub(crate) fn mean_days(route: &Route, params: &FlowParams) -> Vec<u32> {
    (0..route.segments.len())
        .map(|s| match route.segments[s].mode {
            SegmentMode::Sea => 1,
            SegmentMode::Land => ((segment_length_km(route, s) / params.land_speed_km_per_day).round() as u32).max(1),
        })
        .collect()
}

/// A travel time around the mean: one day shorter or longer with 20% each.
fn draw_days(rng: &mut Rng, mean: u32) -> u32 {
    if mean < 2 {
        return mean.max(1);
    }
    match rng.uniform() {
        u if u < 0.2 => mean - 1,
        u if u < 0.8 => mean,
        _ => mean + 1,
    }
}

pub(crate) fn simulate_flows(
    routes: &[Route],
    days: usize,
    start_day_of_year: u32,
    params: &FlowParams,
    seed: u64,
    real: Option<&RealArrivals>,
) -> Flows {
    let mut rng = Rng::stream(seed, 1, 0);
    let shapes: Vec<RouteShape> = routes.iter().map(shape).collect();
    let means: Vec<Vec<u32>> = routes.iter().map(|r| mean_days(r, params)).collect();
    let real_route = real.and_then(|r| routes.iter().position(|route| route.id == r.route));
    let mut flows = Flows {
        cohorts: Vec::new(),
        active: vec![Vec::new(); days],
        waiting: routes.iter().map(|r| vec![vec![(0, 0); days]; r.stations.len()]).collect(),
        station_arrivals: routes.iter().map(|r| vec![vec![0; days]; r.stations.len()]).collect(),
        segment_days: routes.iter().map(|r| vec![vec![SegmentDay::default(); days]; r.segments.len()]).collect(),
        totals: vec![RouteTotals::default(); routes.len()],
        mean_days: means.clone(),
    };
    let mut queues: Vec<Vec<(u64, u64)>> = routes.iter().map(|r| vec![(0, 0); r.stations.len()]).collect();
    let mut exits: Vec<BTreeMap<i32, Vec<usize>>> = vec![BTreeMap::new(); routes.len()];
    let mut diverted_pending: Vec<BTreeMap<usize, u64>> = vec![BTreeMap::new(); routes.len()];
    let mut sea_state = vec![0.0f64; routes.len()];
    let mut burst_left = vec![0u32; routes.len()];
    let closure = params.closure.as_ref().and_then(|c| {
        let route = routes.iter().position(|r| r.id == c.route)?;
        let station = routes[route].stations.iter().position(|s| s.id == c.station)?;
        let divert_to = routes.iter().position(|r| r.id == c.divert_to);
        Some((route, station, divert_to, c))
    });

    for day in 0..days {
        let t = day as i32;
        let day_of_year = f64::from((start_day_of_year + day as u32) % 365);
        let summer = (std::f64::consts::TAU * (day_of_year - params.peak_day_of_year) / 365.25).cos();
        for (r, route) in routes.iter().enumerate() {
            let shape = &shapes[r];
            sea_state[r] = 0.8 * sea_state[r] + 0.6 * rng.normal();
            let calm = sea_state[r] < params.sea_calm_threshold + params.sea_summer_bonus * summer;
            if Some(r) == real_route {
                continue;
            }
            // Departures, split over the origins.
            let base = params.departures_per_day.get(&route.id).copied().unwrap_or(params.default_departures_per_day);
            if burst_left[r] > 0 {
                burst_left[r] -= 1;
            } else if rng.uniform() < params.burst_probability {
                burst_left[r] = 1 + (rng.next_u64() % 3) as u32;
            }
            let burst = if burst_left[r] > 0 { params.burst_factor } else { 1.0 };
            let mean = base * (1.0 + params.seasonal_amplitude * summer).max(0.05) * burst;
            let mut departing = rng.negative_binomial(mean, params.dispersion);
            flows.totals[r].departures += departing;
            if let Some(diverted) = diverted_pending[r].remove(&day) {
                flows.totals[r].diverted_in += diverted;
                departing += diverted;
            }
            let mut remaining = departing;
            for (i, &origin) in shape.origins.iter().enumerate() {
                let share = if i + 1 == shape.origins.len() {
                    remaining
                } else {
                    rng.binomial(remaining, 1.0 / (shape.origins.len() - i) as f64)
                };
                remaining -= share;
                let phones = rng.binomial(share, params.phone_share);
                queues[r][origin].0 += share;
                queues[r][origin].1 += phones;
            }
            // Groups reaching the end of a segment today.
            for id in exits[r].remove(&t).unwrap_or_default() {
                let cohort = flows.cohorts[id];
                let station = shape.to[cohort.segment];
                flows.station_arrivals[r][station][day] += cohort.people;
                flows.segment_days[r][cohort.segment][day].exited += u64::from(cohort.people);
                if route.stations[station].role == StationRole::Destination {
                    flows.totals[r].arrived += u64::from(cohort.people);
                } else {
                    queues[r][station].0 += u64::from(cohort.people);
                    queues[r][station].1 += u64::from(cohort.phones);
                }
            }
            // Departures from each station onto its outgoing segment, upstream first.
            for &station in &shape.order {
                let Some(segment) = shape.outgoing[station] else { continue };
                let (waiting, phones) = queues[r][station];
                let closed = closure.is_some_and(|(cr, cs, _, c)| {
                    cr == r && cs == station && (c.start_day as usize..(c.start_day + c.days) as usize).contains(&day)
                });
                let mut release = match route.stations[station].role {
                    StationRole::Border if closed => 0,
                    StationRole::Border => waiting.min((params.border_capacity_factor * base).round() as u64),
                    StationRole::Staging => rng.binomial(waiting, params.staging_release_share),
                    _ => waiting,
                };
                if route.segments[segment].mode == SegmentMode::Sea && !calm {
                    release = 0;
                }
                let released_phones =
                    if waiting == 0 { 0 } else { (phones as f64 * release as f64 / waiting as f64).round() as u64 };
                queues[r][station] = (waiting - release, phones - released_phones);
                if closed {
                    if let Some((_, _, divert_to, c)) = closure {
                        let (left, left_phones) = queues[r][station];
                        let diverted = rng.binomial(left, c.divert_share_per_day);
                        let diverted_phones = if left == 0 {
                            0
                        } else {
                            (left_phones as f64 * diverted as f64 / left as f64).round() as u64
                        };
                        queues[r][station] = (left - diverted, left_phones - diverted_phones);
                        flows.totals[r].diverted_out += diverted;
                        if let Some(target) = divert_to.filter(|&target| Some(target) != real_route) {
                            *diverted_pending[target].entry(day + 2).or_default() += diverted;
                        }
                    }
                }
                // Split the released group by travel time.
                let mean = means[r][segment];
                let mut left = (release, released_phones);
                let options: Vec<u32> = if mean < 2 { vec![mean.max(1)] } else { vec![mean - 1, mean, mean + 1] };
                let shares = if options.len() == 1 { vec![1.0] } else { vec![0.2, 0.6, 0.2] };
                for (i, (&duration, &share)) in options.iter().zip(&shares).enumerate() {
                    let rest: f64 = shares[i..].iter().sum();
                    let people = if i + 1 == options.len() { left.0 } else { rng.binomial(left.0, share / rest) };
                    let phones =
                        if left.0 == 0 { 0 } else { (left.1 as f64 * people as f64 / left.0 as f64).round() as u64 };
                    left = (left.0 - people, left.1 - phones);
                    if people == 0 {
                        continue;
                    }
                    let id = flows.cohorts.len();
                    flows.cohorts.push(Cohort {
                        route: r,
                        segment,
                        entered: t,
                        exits: t + duration as i32,
                        people: people as u32,
                        phones: phones as u32,
                    });
                    exits[r].entry(t + duration as i32).or_default().push(id);
                    flows.segment_days[r][segment][day].entered += people;
                }
                flows.waiting[r][station][day] = (queues[r][station].0 as u32, queues[r][station].1 as u32);
            }
        }
    }
    if let (Some(r), Some(real)) = (real_route, real) {
        schedule_real_route(&mut flows, &routes[r], &shapes[r], r, real, params, days, &mut Rng::stream(seed, 2, 0));
    }
    // Active lists, in-transit and waiting totals.
    for (id, cohort) in flows.cohorts.iter().enumerate() {
        let first = cohort.entered.max(0) as usize;
        let last = (cohort.exits.max(0) as usize).min(days);
        for day in first..last {
            flows.active[day].push(id as u32);
            flows.segment_days[cohort.route][cohort.segment][day].in_transit += u64::from(cohort.people);
        }
        if cohort.exits as usize >= days && cohort.entered < days as i32 {
            flows.totals[cohort.route].in_transit_end += u64::from(cohort.people);
        }
    }
    for (r, shape) in shapes.iter().enumerate() {
        for (segment, &station) in shape.from.iter().enumerate() {
            for day in 0..days {
                flows.segment_days[r][segment][day].waiting_at_start = u64::from(flows.waiting[r][station][day].0);
            }
        }
        if Some(r) != real_route {
            flows.totals[r].waiting_end = queues[r].iter().map(|q| q.0).sum();
        }
    }
    flows
}

/// Builds the groups of a real-data route backwards from its observed daily
/// arrivals: each day's arrivals travel in boat-sized groups whose travel
/// times and waits in staging areas are drawn as in the forward model, so
/// that upstream presence leads the real series.
#[allow(clippy::too_many_arguments)]
fn schedule_real_route(
    flows: &mut Flows,
    route: &Route,
    shape: &RouteShape,
    r: usize,
    real: &RealArrivals,
    params: &FlowParams,
    days: usize,
    rng: &mut Rng,
) {
    flows.totals[r].real_arrivals = true;
    let destination = route.stations.iter().position(|s| s.role == StationRole::Destination).expect("a destination");
    let means = flows.mean_days[r].clone();
    for (day, arrivals) in real.daily.iter().enumerate() {
        let Some(arrivals) = *arrivals else { continue };
        if arrivals == 0 {
            continue;
        }
        if day < days {
            flows.station_arrivals[r][destination][day] += arrivals;
            flows.totals[r].arrived += u64::from(arrivals);
        }
        let groups = arrivals.div_ceil(50);
        let mut left = arrivals;
        for g in 0..groups {
            let people = if g + 1 == groups { left } else { left / (groups - g) };
            left -= people;
            let phones = rng.binomial(u64::from(people), params.phone_share) as u32;
            // Walk upstream from the destination.
            let mut exit_day = day as i32;
            let mut station = destination;
            while let Some(segment) = (0..route.segments.len()).find(|&s| shape.to[s] == station) {
                let duration = draw_days(rng, means[segment]) as i32;
                let entered = exit_day - duration;
                let id = flows.cohorts.len();
                flows.cohorts.push(Cohort { route: r, segment, entered, exits: exit_day, people, phones });
                let _ = id;
                if (0..days as i32).contains(&entered) {
                    flows.segment_days[r][segment][entered as usize].entered += u64::from(people);
                }
                if (0..days as i32).contains(&exit_day) {
                    flows.segment_days[r][segment][exit_day as usize].exited += u64::from(people);
                    if shape.to[segment] != destination {
                        flows.station_arrivals[r][shape.to[segment]][exit_day as usize] += people;
                    }
                }
                station = shape.from[segment];
                let wait = match route.stations[station].role {
                    StationRole::Staging => {
                        let mut w = 0;
                        while rng.uniform() > params.staging_release_share && w < 10 {
                            w += 1;
                        }
                        w
                    }
                    _ => 0,
                };
                for waiting_day in (entered - wait)..entered {
                    if (0..days as i32).contains(&waiting_day) {
                        let slot = &mut flows.waiting[r][station][waiting_day as usize];
                        slot.0 += people;
                        slot.1 += phones;
                    }
                }
                exit_day = entered - wait;
                if route.stations[station].role == StationRole::Origin && (0..days as i32).contains(&exit_day) {
                    flows.totals[r].departures += u64::from(people);
                }
            }
        }
    }
}

/// Official registrations per (station id, day), from true arrivals: each
/// arrival is registered with `registration_rate`, on the day of arrival or
/// after a reporting delay. Stations that appear on several routes are
/// summed. A real-data route's destination reports its real figures as they are.
pub(crate) fn registrations(
    routes: &[Route],
    flows: &Flows,
    params: &FlowParams,
    days: usize,
    seed: u64,
    real: Option<&RealArrivals>,
) -> BTreeMap<(String, usize), u64> {
    let mut rng = Rng::stream(seed, 3, 0);
    let mut registered: BTreeMap<(String, usize), u64> = BTreeMap::new();
    let delays_total: f64 = params.reporting_delay_shares.iter().sum();
    for (r, route) in routes.iter().enumerate() {
        let real_here = real.filter(|real| real.route == route.id);
        for (s, station) in route.stations.iter().enumerate() {
            if station.role == StationRole::Origin {
                continue;
            }
            for day in 0..days {
                let arrivals = flows.station_arrivals[r][s][day];
                if station.role == StationRole::Destination {
                    if let Some(real) = real_here {
                        if let Some(Some(count)) = real.daily.get(day) {
                            *registered.entry((station.id.clone(), day)).or_default() += u64::from(*count);
                        }
                        continue;
                    }
                }
                let mut left = rng.binomial(u64::from(arrivals), params.registration_rate);
                let mut rest = delays_total;
                for (delay, share) in params.reporting_delay_shares.iter().enumerate() {
                    let count = if delay + 1 == params.reporting_delay_shares.len() {
                        left
                    } else {
                        rng.binomial(left, share / rest)
                    };
                    left -= count;
                    rest -= share;
                    if day + delay < days {
                        *registered.entry((station.id.clone(), day + delay)).or_default() += count;
                    }
                }
            }
            // Every station reports every day, zero included.
            for day in 0..days {
                registered.entry((station.id.clone(), day)).or_default();
            }
        }
    }
    registered
}

/// The expected lead, in days, of people seen in `segment` over their
/// registration at the route's destination: half the segment's own travel
/// time, the travel time of every segment downstream, the mean wait in the
/// staging areas on the way, and the mean reporting delay.
pub(crate) fn lead_days(route: &Route, mean_days: &[u32], params: &FlowParams, segment: usize) -> f64 {
    let shape = shape(route);
    let mut lead = f64::from(mean_days[segment]) / 2.0;
    let mut station = shape.to[segment];
    while let Some(next) = shape.outgoing[station] {
        if route.stations[station].role == StationRole::Staging {
            lead += (1.0 - params.staging_release_share) / params.staging_release_share;
        }
        lead += f64::from(mean_days[next]);
        station = shape.to[next];
    }
    let total: f64 = params.reporting_delay_shares.iter().sum();
    lead + params.reporting_delay_shares.iter().enumerate().map(|(d, s)| d as f64 * s / total).sum::<f64>()
}
