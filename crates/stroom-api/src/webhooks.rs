//! Webhooks: a JSON `POST` of an [`AlertEvent`] to every configured URL when
//! a capacity alert opens or closes.
//!
//! The server keeps the set of open alerts it last saw. After every reload
//! of the forecast snapshot and every capacity change it derives the alerts
//! again and sends one event per alert that opened or closed since; the
//! first set after start-up is the baseline and sends nothing (a restart
//! does not repeat events). Each URL gets its events in order, from one
//! task; a delivery is retried on a connection error, a 429 or a 5xx, after
//! 0.25, 0.5, 1 and 2 seconds, then given up and logged.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use crate::dto::{Alert, AlertEvent, AlertStatus, AlertWindow};

/// Deliveries of one event to one URL, the first included.
const ATTEMPTS: u32 = 5;
/// The wait before the first retry; doubled after each.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// How long one delivery may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// What identifies an alert across derivations.
type AlertKey = (String, AlertWindow, String, String);

fn key(alert: &Alert) -> AlertKey {
    (alert.station.clone(), alert.window, alert.date.clone(), alert.opened_by.clone())
}

/// Sends alert events to the configured URLs.
#[derive(Debug)]
pub(crate) struct Notifier {
    urls: Vec<String>,
    client: reqwest::Client,
    /// The open alerts last seen; `None` before the baseline.
    open: Mutex<Option<BTreeMap<AlertKey, Alert>>>,
}

impl Notifier {
    pub(crate) fn new(urls: Vec<String>) -> Self {
        let client = reqwest::Client::builder().timeout(DELIVERY_TIMEOUT).build().unwrap_or_default();
        Self { urls, client, open: Mutex::new(None) }
    }

    /// Whether any URL is configured.
    pub(crate) fn is_active(&self) -> bool {
        !self.urls.is_empty()
    }

    /// Compares `alerts` (every alert, open and closed) with the open ones
    /// last seen and sends an event for each change.
    pub(crate) fn observe(&self, alerts: &[Alert]) {
        let now: BTreeMap<AlertKey, Alert> =
            alerts.iter().filter(|a| a.status == AlertStatus::Open).map(|a| (key(a), a.clone())).collect();
        let mut guard = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let Some(before) = guard.replace(now.clone()) else { return };
        let mut events = Vec::new();
        for (k, alert) in &now {
            if !before.contains_key(k) {
                events.push(AlertEvent { event: "alert.opened".into(), alert: alert.clone() });
            }
        }
        let by_key: BTreeMap<AlertKey, &Alert> = alerts.iter().map(|a| (key(a), a)).collect();
        let gone: BTreeSet<&AlertKey> = before.keys().filter(|k| !now.contains_key(*k)).collect();
        for k in gone {
            let alert = match by_key.get(k) {
                Some(closed) => (*closed).clone(),
                // No longer derived at all (a capacity was changed or removed).
                None => {
                    let mut alert = before[k].clone();
                    alert.status = AlertStatus::Closed;
                    alert.closed_because = Some("capacity changed".into());
                    alert
                }
            };
            events.push(AlertEvent { event: "alert.closed".into(), alert });
        }
        drop(guard);
        if events.is_empty() {
            return;
        }
        for url in &self.urls {
            let (client, url, events) = (self.client.clone(), url.clone(), events.clone());
            tokio::spawn(async move {
                for event in &events {
                    deliver(&client, &url, event).await;
                }
            });
        }
    }
}

/// Posts one event, retrying with backoff.
async fn deliver(client: &reqwest::Client, url: &str, event: &AlertEvent) {
    let body = match serde_json::to_vec(event) {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "Serialising an alert event failed.");
            return;
        }
    };
    let mut wait = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        let sent = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("x-stroom-event", &event.event)
            .body(body.clone())
            .send()
            .await;
        let failure = match sent {
            Ok(response) if response.status().is_success() => {
                tracing::info!(url, event = %event.event, station = %event.alert.station, "Delivered an alert event.");
                return;
            }
            Ok(response) if response.status().is_server_error() || response.status().as_u16() == 429 => {
                format!("the receiver answered {}", response.status())
            }
            Ok(response) => {
                tracing::warn!(url, status = %response.status(), "A webhook receiver refused an alert event; not retried.");
                return;
            }
            Err(error) => format!("{error}"),
        };
        if attempt == ATTEMPTS {
            tracing::warn!(url, attempts = ATTEMPTS, %failure, "Giving up delivering an alert event.");
            return;
        }
        tracing::debug!(url, attempt, %failure, "Retrying an alert event.");
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
}
