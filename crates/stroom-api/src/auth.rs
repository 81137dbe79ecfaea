//! API keys: random bearer tokens stored only as SHA-256 hashes, each with a
//! role, optionally the routes it may see and an expiry, and a revocation
//! time once revoked. A revoked or expired key stays in the file, so that
//! its refusals are logged under its id.

use std::collections::BTreeSet;
use std::path::Path;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ApiError;

/// What a key may do. Roles are not ordered: each grants a fixed set of
/// [`Permission`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads routes, forecasts, maps and briefings.
    Viewer,
    /// A viewer who also reads density series and runs backtests.
    Analyst,
    /// Delivers data (uploads density and arrivals files); reads nothing
    /// through the API.
    Ingest,
    /// Everything, including metrics and forecast refreshes.
    Admin,
}

/// One thing an endpoint needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Routes, forecasts, maps, briefings.
    ReadForecasts,
    /// Density series of routes and cells.
    ReadSeries,
    /// Start and read backtests.
    RunBacktests,
    /// Metrics and forecast refreshes.
    Administer,
    /// Upload density and arrivals files.
    Deliver,
}

impl Role {
    /// Every role, in the order the command line lists them.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Analyst, Role::Ingest, Role::Admin];

    /// The role's name on the command line and in the key file.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Analyst => "analyst",
            Role::Ingest => "ingest",
            Role::Admin => "admin",
        }
    }

    /// Whether the role grants `permission`.
    pub fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            Role::Analyst => matches!(permission, ReadForecasts | ReadSeries | RunBacktests),
            Role::Viewer => matches!(permission, ReadForecasts),
            Role::Ingest => matches!(permission, Deliver),
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or_else(|| format!("'{text}' is not a role: use viewer, analyst, ingest or admin"))
    }
}

/// One key as stored: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// A public name for the key, written to the audit log.
    pub id: String,
    /// What the key may do.
    pub role: Role,
    /// The routes the key may see; every route when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<BTreeSet<String>>,
    /// Hex SHA-256 of the token.
    pub sha256: String,
    /// When the key was created (RFC 3339).
    pub created: String,
    /// When the key stops working (RFC 3339); never when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// When the key was revoked (RFC 3339); a revoked key is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
}

/// Whether a key may be used now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    Active,
    /// Revoked at this time (RFC 3339).
    Revoked(String),
    /// Expired at this time (RFC 3339).
    Expired(String),
}

impl KeyState {
    /// `active`, `revoked` or `expired`.
    pub fn as_str(&self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Revoked(_) => "revoked",
            KeyState::Expired(_) => "expired",
        }
    }
}

fn parse_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&chrono::Utc))
}

/// An expiry from `--expires`: a duration from `now` (`90d`, `12h`, `30m`,
/// `2w`) or a time (RFC 3339, or a date `YYYY-MM-DD`, its midnight UTC).
pub fn expiry(text: &str, now: chrono::DateTime<chrono::Utc>) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let bad =
        || format!("'{text}' is not an expiry: give a span (90d, 12h, 30m, 2w) or a time (RFC 3339 or YYYY-MM-DD)");
    let at = if let Some(time) = parse_time(text) {
        time
    } else if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        date.and_time(chrono::NaiveTime::MIN).and_utc()
    } else {
        let span = stroom_core::parse_duration(text).map_err(|_| bad())?;
        chrono::Duration::from_std(span)
            .ok()
            .filter(|s| *s > chrono::Duration::zero())
            .and_then(|s| now.checked_add_signed(s))
            .ok_or_else(bad)?
    };
    if at <= now {
        return Err(format!("the expiry '{text}' is not in the future"));
    }
    Ok(at)
}

impl KeyRecord {
    /// Whether the key may be used at `now`: not revoked, not expired.
    pub fn state(&self, now: chrono::DateTime<chrono::Utc>) -> KeyState {
        if let Some(revoked) = &self.revoked {
            return KeyState::Revoked(revoked.clone());
        }
        match self.expires.as_deref().and_then(parse_time) {
            Some(expires) if expires <= now => KeyState::Expired(self.expires.clone().unwrap_or_default()),
            _ => KeyState::Active,
        }
    }

    /// Whether the key may see `route`.
    pub fn sees_route(&self, route: &str) -> bool {
        self.routes.as_ref().is_none_or(|routes| routes.contains(route))
    }
}

/// The key file (`keys.toml`): a list of [`KeyRecord`]s.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFile {
    /// The keys, oldest first.
    #[serde(default)]
    pub keys: Vec<KeyRecord>,
}

/// The prefix of every token, so that a leaked token is recognisable.
const TOKEN_PREFIX: &str = "stroom_";

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Compares two digests in time that does not depend on where they differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl KeyFile {
    /// Reads a key file; a missing file is an empty one.
    pub fn load(path: &Path) -> Result<Self, ApiError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(ApiError::Config(format!("reading {}: {e}", path.display()))),
        };
        let file: KeyFile =
            toml::from_str(&text).map_err(|e| ApiError::Config(format!("{}: {}", path.display(), e.message())))?;
        let mut ids = BTreeSet::new();
        for key in &file.keys {
            let problem = |what: String| ApiError::Config(format!("{}: key '{}' {what}", path.display(), key.id));
            let valid = key.sha256.len() == 64 && key.sha256.bytes().all(|b| b.is_ascii_hexdigit());
            if !valid {
                return Err(problem(format!("has sha256 '{}', which is not 64 hex digits", key.sha256)));
            }
            for (field, value) in [("expires", &key.expires), ("revoked", &key.revoked)] {
                if let Some(value) = value.as_deref().filter(|v| parse_time(v).is_none()) {
                    return Err(problem(format!("has {field} '{value}', which is not an RFC 3339 time")));
                }
            }
            if !ids.insert(key.id.as_str()) {
                return Err(problem("appears twice".into()));
            }
        }
        Ok(file)
    }

    /// Writes the file atomically (a new file renamed over the old one),
    /// readable by its owner only.
    fn save(&self, path: &Path) -> Result<(), ApiError> {
        let text = toml::to_string_pretty(self).map_err(|e| ApiError::Config(e.to_string()))?;
        let text = format!(
            "# stroom API keys: only SHA-256 hashes of the tokens are stored.\n# Create keys with `stroom keys create`, revoke them with `stroom keys revoke`.\n\n{text}"
        );
        let tmp = path.with_extension("toml.tmp");
        let write = || -> std::io::Result<()> {
            std::fs::write(&tmp, text)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
            }
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| ApiError::Config(format!("writing {}: {e}", path.display())))
    }

    /// Revokes the key `id` at `at` (RFC 3339) and writes the file. A key
    /// revoked before keeps its first revocation time. Returns the record.
    pub fn revoke(path: &Path, id: &str, at: String) -> Result<KeyRecord, ApiError> {
        let mut file = Self::load(path)?;
        let key = file
            .keys
            .iter_mut()
            .find(|k| k.id == id)
            .ok_or_else(|| ApiError::Config(format!("{}: there is no key '{id}'", path.display())))?;
        key.revoked.get_or_insert(at);
        let record = key.clone();
        file.save(path)?;
        Ok(record)
    }

    /// Adds a new key with a fresh random token and writes the file
    /// (atomically, readable by its owner only). Returns the token, which is
    /// stored nowhere.
    pub fn create_key(
        path: &Path,
        role: Role,
        routes: Option<BTreeSet<String>>,
        created: String,
        expires: Option<String>,
    ) -> Result<(String, KeyRecord), ApiError> {
        let mut file = Self::load(path)?;
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let token = format!("{TOKEN_PREFIX}{}", hex::encode(secret));
        let mut id_bytes = [0u8; 6];
        rand::rng().fill_bytes(&mut id_bytes);
        let record = KeyRecord {
            id: format!("key-{}", hex::encode(id_bytes)),
            role,
            routes,
            sha256: hex::encode(digest(&token)),
            created,
            expires,
            revoked: None,
        };
        file.keys.push(record.clone());
        file.save(path)?;
        Ok((token, record))
    }

    /// The key whose token this is.
    pub fn authenticate(&self, token: &str) -> Option<&KeyRecord> {
        self.authenticate_index(token).map(|i| &self.keys[i])
    }

    /// The position of the key whose token this is. Every stored hash is
    /// compared, each in constant time, so the answer takes as long whichever
    /// key matches.
    pub fn authenticate_index(&self, token: &str) -> Option<usize> {
        let presented = digest(token);
        let mut found = None;
        for (index, key) in self.keys.iter().enumerate() {
            let mut stored = [0u8; 32];
            if hex::decode_to_slice(&key.sha256, &mut stored).is_ok() && constant_time_eq(&presented, &stored) {
                found = found.or(Some(index));
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_key_authenticates_and_only_its_hash_is_stored() {
        let dir = tempfile_dir();
        let path = dir.join("keys.toml");
        let routes = Some(BTreeSet::from(["channel".to_owned()]));
        let created = || "2026-01-01T00:00:00Z".to_owned();
        let (token, record) = KeyFile::create_key(&path, Role::Viewer, routes, created(), None).unwrap();
        let (other, _) = KeyFile::create_key(&path, Role::Admin, None, created(), None).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&token) && !text.contains(&other));
        let file = KeyFile::load(&path).unwrap();
        assert_eq!(file.keys.len(), 2);
        assert_eq!(file.authenticate(&token), Some(&record));
        assert_eq!(file.authenticate(&other).map(|k| k.role), Some(Role::Admin));
        assert!(file.authenticate("stroom_0000").is_none());
        assert!(file.keys[0].sees_route("channel") && !file.keys[0].sees_route("western-balkans"));
        assert!(file.keys[1].sees_route("western-balkans"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn revoked_and_expired_keys_are_known_but_not_active() {
        let dir = tempfile_dir();
        let path = dir.join("keys.toml");
        let now = parse_time("2026-03-01T12:00:00Z").unwrap();
        let expires = expiry("90d", now).unwrap();
        assert_eq!(expires.to_rfc3339(), "2026-05-30T12:00:00+00:00");
        let expires = Some(expires.to_rfc3339());
        let (token, record) =
            KeyFile::create_key(&path, Role::Viewer, None, "2026-03-01T12:00:00Z".into(), expires).unwrap();
        assert_eq!(record.state(now), KeyState::Active);
        let later = parse_time("2026-05-30T12:00:00Z").unwrap();
        assert_eq!(record.state(later).as_str(), "expired");
        let revoked = KeyFile::revoke(&path, &record.id, "2026-03-02T00:00:00Z".into()).unwrap();
        assert_eq!(revoked.state(now), KeyState::Revoked("2026-03-02T00:00:00Z".into()));
        // A second revocation keeps the first time; the key still authenticates
        // (so that its refusals carry its id), and it is refused by its state.
        KeyFile::revoke(&path, &record.id, "2026-04-01T00:00:00Z".into()).unwrap();
        let file = KeyFile::load(&path).unwrap();
        assert_eq!(file.authenticate(&token).unwrap().revoked.as_deref(), Some("2026-03-02T00:00:00Z"));
        let error = KeyFile::revoke(&path, "key-nope", "2026-04-01T00:00:00Z".into()).unwrap_err().to_string();
        assert!(error.contains("no key 'key-nope'"), "{error}");
        for bad in ["90", "d", "-3d", "0h", "3y", "2026-02-30", "2026-01-01"] {
            assert!(expiry(bad, now).is_err(), "{bad}");
        }
        assert_eq!(expiry("2027-01-01", now).unwrap().to_rfc3339(), "2027-01-01T00:00:00+00:00");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn roles_grant_fixed_permissions() {
        use Permission::*;
        let check = |role: Role, expected: [bool; 5]| {
            let got = [ReadForecasts, ReadSeries, RunBacktests, Administer, Deliver].map(|p| role.allows(p));
            assert_eq!(got, expected, "{role:?}");
        };
        check(Role::Viewer, [true, false, false, false, false]);
        check(Role::Analyst, [true, true, true, false, false]);
        check(Role::Ingest, [false, false, false, false, true]);
        check(Role::Admin, [true, true, true, true, true]);
    }

    #[test]
    fn a_malformed_key_file_names_the_problem() {
        let dir = tempfile_dir();
        let path = dir.join("keys.toml");
        std::fs::write(&path, "[[keys]]\nid = \"a\"\nrole = \"boss\"\nsha256 = \"00\"\ncreated = \"x\"\n").unwrap();
        let error = KeyFile::load(&path).unwrap_err().to_string();
        assert!(error.contains("keys.toml") && error.contains("boss"), "{error}");
        std::fs::write(&path, "[[keys]]\nid = \"a\"\nrole = \"admin\"\nsha256 = \"00\"\ncreated = \"x\"\n").unwrap();
        let error = KeyFile::load(&path).unwrap_err().to_string();
        assert!(error.contains("'a'") && error.contains("64 hex digits"), "{error}");
        let hash = "0".repeat(64);
        let record = format!("[[keys]]\nid = \"a\"\nrole = \"admin\"\nsha256 = \"{hash}\"\ncreated = \"x\"\n");
        std::fs::write(&path, format!("{record}expires = \"soon\"\n")).unwrap();
        let error = KeyFile::load(&path).unwrap_err().to_string();
        assert!(error.contains("expires 'soon'") && error.contains("RFC 3339"), "{error}");
        std::fs::write(&path, format!("{record}{record}")).unwrap();
        let error = KeyFile::load(&path).unwrap_err().to_string();
        assert!(error.contains("'a' appears twice"), "{error}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let mut bytes = [0u8; 8];
        rand::rng().fill_bytes(&mut bytes);
        let dir = std::env::temp_dir().join(format!("stroom-keys-{}", hex::encode(bytes)));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
