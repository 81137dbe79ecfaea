//! The background population: device density from real city centres along
//! the routes (Gaussian kernels weighted by population) plus a rural floor,
//! with daily and weekly cycles.

use h3o::LatLng;

/// A real city: name, latitude, longitude, population in thousands.
pub(crate) type City = (&'static str, f64, f64, f64);

/// Cities along and near the shipped corridors (approximate populations of
/// the urban area, thousands).
pub(crate) const CITIES: &[City] = &[
    ("Thessaloniki", 40.6401, 22.9444, 1000.0),
    ("Gevgelija", 41.1417, 22.5025, 15.0),
    ("Veles", 41.7156, 21.7756, 45.0),
    ("Skopje", 41.9981, 21.4254, 550.0),
    ("Kumanovo", 42.1322, 21.7144, 100.0),
    ("Presevo", 42.3092, 21.6497, 30.0),
    ("Vranje", 42.5514, 21.9003, 60.0),
    ("Nis", 43.3209, 21.8958, 260.0),
    ("Belgrade", 44.8125, 20.4612, 1700.0),
    ("Novi Sad", 45.2671, 19.8335, 340.0),
    ("Subotica", 46.1000, 19.6658, 100.0),
    ("Szeged", 46.2530, 20.1414, 160.0),
    ("Kecskemet", 46.8964, 19.6897, 110.0),
    ("Budapest", 47.4979, 19.0402, 1750.0),
    ("Gyor", 47.6875, 17.6504, 130.0),
    ("Vienna", 48.2082, 16.3738, 1900.0),
    ("Linz", 48.3069, 14.2858, 210.0),
    ("Passau", 48.5667, 13.4319, 50.0),
    ("Regensburg", 49.0134, 12.1016, 150.0),
    ("Nuremberg", 49.4521, 11.0767, 520.0),
    ("Wurzburg", 49.7913, 9.9534, 130.0),
    ("Kassel", 51.3127, 9.4797, 200.0),
    ("Osnabruck", 52.2799, 8.0472, 165.0),
    ("Bad Bentheim", 52.3031, 7.1594, 16.0),
    ("Nordhorn", 52.4333, 7.0667, 54.0),
    ("Emmen", 52.7792, 6.9006, 57.0),
    ("Ter Apel", 52.8756, 7.0597, 10.0),
    ("Bialystok", 53.1325, 23.1688, 300.0),
    ("Warsaw", 52.2297, 21.0122, 1800.0),
    ("Lodz", 51.7592, 19.4560, 670.0),
    ("Poznan", 52.4064, 16.9252, 530.0),
    ("Frankfurt (Oder)", 52.3471, 14.5506, 57.0),
    ("Berlin", 52.5200, 13.4050, 3700.0),
    ("Hanover", 52.3759, 9.7320, 540.0),
    ("Brussels", 50.8503, 4.3517, 1200.0),
    ("Ghent", 51.0543, 3.7174, 260.0),
    ("Lille", 50.6292, 3.0573, 230.0),
    ("Dunkirk", 51.0344, 2.3768, 90.0),
    ("Calais", 50.9513, 1.8587, 70.0),
    ("Boulogne-sur-Mer", 50.7264, 1.6147, 40.0),
    ("Dover", 51.1279, 1.3134, 30.0),
    ("Sfax", 34.7406, 10.7603, 330.0),
    ("Tripoli", 32.8872, 13.1913, 1100.0),
    ("Zuwara", 32.9312, 12.0819, 45.0),
    ("Lampedusa", 35.5078, 12.6033, 6.0),
    ("Porto Empedocle", 37.2858, 13.5269, 17.0),
    ("Agrigento", 37.3111, 13.5765, 55.0),
    ("Caltanissetta", 37.4900, 14.0622, 60.0),
    ("Catania", 37.5079, 15.0830, 300.0),
    ("Messina", 38.1938, 15.5540, 220.0),
    ("Cosenza", 39.2983, 16.2537, 65.0),
    ("Salerno", 40.6824, 14.7681, 130.0),
    ("Naples", 40.8518, 14.2681, 900.0),
    ("Rome", 41.9028, 12.4964, 2800.0),
    ("Florence", 43.7696, 11.2558, 370.0),
    ("Bologna", 44.4949, 11.3426, 390.0),
    ("Milan", 45.4642, 9.1900, 1400.0),
    ("Genoa", 44.4056, 8.9463, 560.0),
    ("Savona", 44.3091, 8.4772, 60.0),
    ("Sanremo", 43.8159, 7.7761, 55.0),
    ("Ventimiglia", 43.7914, 7.6083, 24.0),
];

/// Parameters of the background population.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct PopulationParams {
    /// Share of residents whose phones the provider counts.
    pub market_share: f64,
    /// Rural people per km² away from any city.
    pub rural_density_km2: f64,
    /// Kernel width of a city of 100,000 people, km; it grows with the square
    /// root of the population.
    pub city_sigma_km: f64,
    /// Gamma shape of the hourly overdispersion (smaller is noisier).
    pub noise_shape: f64,
}

impl Default for PopulationParams {
    fn default() -> Self {
        Self { market_share: 0.3, rural_density_km2: 8.0, city_sigma_km: 2.5, noise_shape: 30.0 }
    }
}

/// Mean devices present in a cell of `area_km2` centred at (lat, lng), at
/// the daily mean, before cycles and scale.
pub(crate) fn base_devices(params: &PopulationParams, lat: f64, lng: f64, area_km2: f64) -> f64 {
    let here = LatLng::new(lat, lng).expect("cell centres are valid coordinates");
    let mut people = params.rural_density_km2 * area_km2;
    for &(_, city_lat, city_lng, thousands) in CITIES {
        let centre = LatLng::new(city_lat, city_lng).expect("city coordinates are valid");
        let distance = here.distance_km(centre);
        let sigma = params.city_sigma_km * (thousands / 100.0).sqrt().max(0.5);
        if distance > 5.0 * sigma {
            continue;
        }
        let density_at_centre = thousands * 1000.0 / (std::f64::consts::TAU * sigma * sigma);
        people += density_at_centre * (-0.5 * (distance / sigma).powi(2)).exp() * area_km2;
    }
    people * params.market_share
}

/// The relative number of devices present at `hour` (UTC, 0-23) on a day of
/// the week (0 = Monday), averaging about 1 over a week: lower at night,
/// slightly lower at weekends.
pub(crate) fn cycle(hour: u32, weekday: u32) -> f64 {
    let daily = 1.0 + 0.35 * ((f64::from(hour) - 14.0) / 24.0 * std::f64::consts::TAU).cos();
    let weekly = if weekday >= 5 { 0.9 } else { 1.04 };
    daily * weekly
}
