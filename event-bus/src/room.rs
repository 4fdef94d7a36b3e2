//! Rooms: named streams of events, each with its own history and access rules.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::name::{self, NameKind};

/// The rooms every bus starts with, unless its configuration says otherwise.
pub const DEFAULT_ROOMS: [&str; 5] = ["monitoring", "scans", "alerts", "chat", "admin"];

/// The history kept per room when its configuration does not say.
pub const DEFAULT_HISTORY: usize = 100;

/// The largest history a room may keep.
pub const MAX_HISTORY: usize = 1_000_000;

/// A validated room name. Cheap to clone; names known at compile time are not even allocated.
#[derive(Clone)]
pub struct Room(Repr);

#[derive(Clone)]
enum Repr {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Room {
    /// Validates `name` against the [naming rule](crate::name).
    pub fn new(name: &str) -> Result<Room> {
        name::validate(NameKind::Room, name)?;
        Ok(Room(Repr::Shared(Arc::from(name))))
    }

    /// Like [`Room::new`] for a name that lives for the whole program, without allocating.
    pub fn from_static(name: &'static str) -> Result<Room> {
        name::validate(NameKind::Room, name)?;
        Ok(Room(Repr::Static(name)))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Static(name) => name,
            Repr::Shared(name) => name,
        }
    }
}

impl PartialEq for Room {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Room {}

impl std::hash::Hash for Room {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Must hash as `str` does, for `Borrow<str>` look-ups.
        self.as_str().hash(state);
    }
}

impl PartialOrd for Room {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Room {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Borrow<str> for Room {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Room {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Room {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl Serialize for Room {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Room {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Room::new(&name).map_err(serde::de::Error::custom)
    }
}

/// Who is asking: the roles of the server's tokens. The bus does not authenticate anyone; it
/// carries each room's rules as data so that whoever does (the server) can enforce them.
///
/// `Viewer < Operator < Admin` form a ladder; `Agent` stands apart (scanning agents).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads dashboards.
    Viewer,
    /// Runs scans and chats.
    Operator,
    /// Manages tokens, agents and the admin room.
    Admin,
    /// A scanning agent.
    Agent,
}

impl Role {
    const fn bit(self) -> u8 {
        match self {
            Role::Viewer => 1,
            Role::Operator => 2,
            Role::Admin => 4,
            Role::Agent => 8,
        }
    }
}

/// A set of roles allowed to do something in a room. Serialised as a list of role names.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Access(u8);

impl Access {
    /// Nobody but the process itself (publishing from Rust code is never restricted).
    pub const NOBODY: Access = Access(0);
    /// Every role.
    pub const EVERYONE: Access = Access(1 | 2 | 4 | 8);

    /// The role and every role above it on the `viewer < operator < admin` ladder.
    pub const fn at_least(role: Role) -> Access {
        Access(match role {
            Role::Viewer => 1 | 2 | 4,
            Role::Operator => 2 | 4,
            Role::Admin => 4,
            Role::Agent => 8,
        })
    }

    /// This set plus `role`.
    pub const fn and(self, role: Role) -> Access {
        Access(self.0 | role.bit())
    }

    /// Whether `role` is in the set.
    pub const fn allows(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    /// The roles in the set.
    pub fn roles(self) -> impl Iterator<Item = Role> {
        [Role::Viewer, Role::Operator, Role::Admin, Role::Agent]
            .into_iter()
            .filter(move |r| self.allows(*r))
    }
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.roles()).finish()
    }
}

impl Serialize for Access {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.roles())
    }
}

impl<'de> Deserialize<'de> for Access {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let roles = Vec::<Role>::deserialize(deserializer)?;
        Ok(roles.into_iter().fold(Access::NOBODY, Access::and))
    }
}

/// The options of one room.
///
/// | option | default | meaning |
/// |---|---|---|
/// | `history` | 100 ([`DEFAULT_HISTORY`]) | events kept for replay; 0 to [`MAX_HISTORY`] |
/// | `subscribe` | viewer and up | roles that may subscribe |
/// | `publish` | operator and up, and agents | roles that may publish |
///
/// [`RoomConfig::defaults`] gives the default rooms their rules: `admin` is admin-only both ways,
/// only operators and admins may publish to `chat`, and no client publishes to `alerts` or
/// `scans` (the server does, through [`crate::Bus`] directly).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomConfig {
    /// The room's name.
    pub name: Room,
    /// How many of the room's latest events are kept for replay.
    pub history: usize,
    /// Roles that may subscribe.
    pub subscribe: Access,
    /// Roles that may publish.
    pub publish: Access,
}

impl RoomConfig {
    /// A room with the default options; fails when the name breaks the naming rule.
    pub fn new(name: &str) -> Result<RoomConfig> {
        Ok(RoomConfig {
            name: Room::new(name)?,
            history: DEFAULT_HISTORY,
            subscribe: Access::at_least(Role::Viewer),
            publish: Access::at_least(Role::Operator).and(Role::Agent),
        })
    }

    /// Sets the history size (checked when the room is added to a bus).
    pub fn history(mut self, size: usize) -> RoomConfig {
        self.history = size;
        self
    }

    /// Sets who may subscribe.
    pub fn subscribe(mut self, access: Access) -> RoomConfig {
        self.subscribe = access;
        self
    }

    /// Sets who may publish.
    pub fn publish(mut self, access: Access) -> RoomConfig {
        self.publish = access;
        self
    }

    /// The default rooms, `monitoring`, `scans`, `alerts`, `chat` and `admin`, with their rules:
    /// `admin` is admin-only, `chat` takes operators' messages, `alerts` and `scans` take none
    /// from clients.
    pub fn defaults() -> Vec<RoomConfig> {
        DEFAULT_ROOMS
            .iter()
            .map(|name| {
                let room =
                    RoomConfig::new(name).expect("default room names follow the naming rule");
                match *name {
                    "admin" => room
                        .subscribe(Access::at_least(Role::Admin))
                        .publish(Access::at_least(Role::Admin)),
                    "chat" => room.publish(Access::at_least(Role::Operator)),
                    // Alerts and scan events come only from the server (validated results
                    // and the orchestrator); no client may publish them.
                    "alerts" | "scans" => room.publish(Access::NOBODY),
                    _ => room,
                }
            })
            .collect()
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.history > MAX_HISTORY {
            return Err(Error::HistorySize {
                room: self.name.to_string(),
                size: self.history,
                max: MAX_HISTORY,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_ladder() {
        let ops = Access::at_least(Role::Operator);
        assert!(!ops.allows(Role::Viewer) && ops.allows(Role::Operator) && ops.allows(Role::Admin));
        assert!(!ops.allows(Role::Agent) && ops.and(Role::Agent).allows(Role::Agent));
        assert!(!Access::NOBODY.allows(Role::Admin));
        let json = serde_json::to_string(&ops).unwrap();
        assert_eq!(json, r#"["operator","admin"]"#);
        assert_eq!(serde_json::from_str::<Access>(&json).unwrap(), ops);
    }

    #[test]
    fn default_rooms_carry_the_design_rules() {
        let rooms = RoomConfig::defaults();
        let find = |n: &str| rooms.iter().find(|r| r.name.as_str() == n).unwrap();
        assert!(!find("admin").subscribe.allows(Role::Operator));
        assert!(find("admin").subscribe.allows(Role::Admin));
        assert!(
            !find("chat").publish.allows(Role::Viewer) && !find("chat").publish.allows(Role::Agent)
        );
        for room in ["scans", "alerts"] {
            assert_eq!(find(room).publish, Access::NOBODY, "{room}: server only");
        }
        assert!(find("monitoring").publish.allows(Role::Agent));
        assert!(find("monitoring").subscribe.allows(Role::Viewer));
        assert!(rooms.iter().all(|r| r.history == DEFAULT_HISTORY));
    }

    #[test]
    fn room_names_are_validated() {
        assert!(Room::new("scans").is_ok());
        assert!(matches!(
            Room::new("Scans"),
            Err(Error::InvalidName {
                what: NameKind::Room,
                ..
            })
        ));
        assert!(serde_json::from_str::<Room>("\"no way\"").is_err());
    }
}
