//! Room permissions: who may join, publish to, read the history of, and see
//! the presence of a room, and who may send direct messages.
//!
//! Rules come from configuration namespaces (`[[permissions.namespaces]]`,
//! first matching pattern wins, `[permissions.default]` otherwise) and from
//! the token: its `rooms` claim (name configurable) lists the room names or
//! patterns the user is *granted*. Access levels:
//!
//! | level | who |
//! | --- | --- |
//! | `anyone` | every connected user |
//! | `members` | users who joined the room on this connection |
//! | `granted` | users whose token grants the room (and, for `publish`, joined it) |
//! | `nobody` | nobody (e.g. rooms only backends publish to) |
//!
//! Patterns are a room name, or a prefix followed by `*` (`public:*`), or `*`
//! alone. A denied request is answered with `ERROR_CODE_PERMISSION_DENIED`
//! before anything about the room is looked at, so a forbidden room leaks
//! nothing, not even whether it exists.

use serde::{Deserialize, Serialize};

/// Who may do something in a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Every connected user.
    Anyone,
    /// Users who joined the room on this connection.
    Members,
    /// Users whose token grants the room.
    Granted,
    /// Nobody.
    Nobody,
}

/// The rules of one kind of room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoomRules {
    /// Who may join: `anyone`, `granted` or `nobody`. Default `anyone`.
    pub join: Access,
    /// Who may publish (always only members): `members`, `granted` or
    /// `nobody`. Default `members`.
    pub publish: Access,
    /// Who may read the history. Default `anyone`.
    pub history: Access,
    /// Who may list the members present. Default `anyone`.
    pub presence: Access,
}

impl Default for RoomRules {
    fn default() -> Self {
        Self {
            join: Access::Anyone,
            publish: Access::Members,
            history: Access::Anyone,
            presence: Access::Anyone,
        }
    }
}

/// A namespace: rooms matching `pattern` follow its rules; a rule left out
/// takes the value from [`RoomRules::default`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Namespace {
    /// A room name, a prefix followed by `*`, or `*`.
    pub pattern: String,
    /// Who may join.
    #[serde(default = "anyone")]
    pub join: Access,
    /// Who may publish.
    #[serde(default = "members")]
    pub publish: Access,
    /// Who may read the history.
    #[serde(default = "anyone")]
    pub history: Access,
    /// Who may list the members present.
    #[serde(default = "anyone")]
    pub presence: Access,
}

fn anyone() -> Access {
    Access::Anyone
}

fn members() -> Access {
    Access::Members
}

impl Namespace {
    /// The namespace's rules.
    pub fn rules(&self) -> RoomRules {
        RoomRules {
            join: self.join,
            publish: self.publish,
            history: self.history,
            presence: self.presence,
        }
    }
}

/// Who may send direct messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DirectAccess {
    /// Every connected user may message any user (default).
    #[default]
    Anyone,
    /// Only users whose token has `"direct": true`.
    Granted,
    /// Nobody (direct messages come only from backends).
    Nobody,
}

/// `[permissions]` configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PermissionsConfig {
    /// Rules of rooms that match no namespace.
    pub default: RoomRules,
    /// Namespaces, tried in order; the first match decides.
    pub namespaces: Vec<Namespace>,
    /// Who may send direct messages. Default `anyone`.
    pub direct: DirectAccess,
}

impl PermissionsConfig {
    /// Checks the values serde cannot: patterns and meaningful access levels.
    pub fn validate(&self) -> Result<(), String> {
        let rules = std::iter::once(("permissions.default", self.default)).chain(
            self.namespaces
                .iter()
                .map(|n| ("permissions.namespaces", n.rules())),
        );
        for ns in &self.namespaces {
            if !valid_pattern(&ns.pattern) {
                return Err(format!(
                    "permissions.namespaces: invalid pattern {:?} (a room name, a prefix followed by `*`, or `*`)",
                    ns.pattern
                ));
            }
        }
        for (name, r) in rules {
            if r.join == Access::Members {
                return Err(format!("{name}: join cannot be `members`"));
            }
            if r.publish == Access::Anyone {
                return Err(format!(
                    "{name}: publish cannot be `anyone` (publishers must join; use `members`)"
                ));
            }
        }
        Ok(())
    }

    /// The rules for `room`.
    pub fn rules(&self, room: &str) -> RoomRules {
        self.namespaces
            .iter()
            .find(|n| matches(&n.pattern, room))
            .map_or(self.default, Namespace::rules)
    }
}

/// An action on a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `join`.
    Join,
    /// `publish`.
    Publish,
    /// `history`.
    History,
    /// `presence`.
    Presence,
}

/// What a user may do: the token's grants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    /// Room names and patterns from the token's rooms claim.
    pub rooms: Vec<String>,
    /// The token's `direct` claim.
    pub direct: bool,
}

impl Grants {
    /// Whether the token grants `room`.
    pub fn grants(&self, room: &str) -> bool {
        self.rooms.iter().any(|p| matches(p, room))
    }
}

/// Whether `action` on `room` is allowed for a user with `grants` who is
/// (`member`) or is not joined to it on this connection.
pub fn allowed(
    config: &PermissionsConfig,
    room: &str,
    action: Action,
    grants: &Grants,
    member: bool,
) -> bool {
    let rules = config.rules(room);
    let access = match action {
        Action::Join => rules.join,
        Action::Publish => rules.publish,
        Action::History => rules.history,
        Action::Presence => rules.presence,
    };
    match access {
        Access::Anyone => true,
        Access::Members => member,
        Access::Granted => grants.grants(room) && (action != Action::Publish || member),
        Access::Nobody => false,
    }
}

/// Whether a user with `grants` may send direct messages.
pub fn direct_allowed(config: &PermissionsConfig, grants: &Grants) -> bool {
    match config.direct {
        DirectAccess::Anyone => true,
        DirectAccess::Granted => grants.direct,
        DirectAccess::Nobody => false,
    }
}

/// Whether a pattern is well formed: no `*` except one at the very end.
pub fn valid_pattern(pattern: &str) -> bool {
    let body = pattern.strip_suffix('*').unwrap_or(pattern);
    !pattern.is_empty() && !body.contains('*')
}

/// Whether `room` matches `pattern` (exact name, or prefix + `*`).
pub fn matches(pattern: &str, room: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => room.starts_with(prefix),
        None => pattern == room,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PermissionsConfig {
        PermissionsConfig {
            default: RoomRules {
                join: Access::Granted,
                publish: Access::Granted,
                history: Access::Granted,
                presence: Access::Members,
            },
            namespaces: vec![
                Namespace {
                    pattern: "public:*".into(),
                    join: Access::Anyone,
                    publish: Access::Members,
                    history: Access::Anyone,
                    presence: Access::Anyone,
                },
                Namespace {
                    pattern: "news:*".into(),
                    join: Access::Anyone,
                    publish: Access::Nobody,
                    history: Access::Members,
                    presence: Access::Nobody,
                },
            ],
            direct: DirectAccess::Granted,
        }
    }

    #[test]
    fn namespaces_decide_in_order() {
        let c = config();
        let nobody = Grants::default();
        let team = Grants {
            rooms: vec!["team-7:*".into(), "ops".into()],
            direct: false,
        };
        assert!(allowed(&c, "public:lobby", Action::Join, &nobody, false));
        assert!(allowed(&c, "public:lobby", Action::Publish, &nobody, true));
        assert!(!allowed(
            &c,
            "public:lobby",
            Action::Publish,
            &nobody,
            false
        ));
        assert!(allowed(&c, "news:today", Action::Join, &nobody, false));
        assert!(!allowed(&c, "news:today", Action::Publish, &team, true));
        assert!(!allowed(&c, "news:today", Action::History, &nobody, false));
        assert!(allowed(&c, "news:today", Action::History, &nobody, true));
        assert!(!allowed(&c, "news:today", Action::Presence, &nobody, true));
        // Default rules: granted rooms only.
        assert!(!allowed(&c, "team-7:chat", Action::Join, &nobody, false));
        assert!(allowed(&c, "team-7:chat", Action::Join, &team, false));
        assert!(allowed(&c, "ops", Action::History, &team, false));
        assert!(!allowed(&c, "ops2", Action::History, &team, false));
        assert!(!allowed(&c, "team-7:chat", Action::Publish, &team, false));
        assert!(allowed(&c, "team-7:chat", Action::Publish, &team, true));
        assert!(!allowed(&c, "team-7:chat", Action::Presence, &team, false));
        assert!(!direct_allowed(&c, &team));
        assert!(direct_allowed(
            &c,
            &Grants {
                direct: true,
                ..team
            }
        ));
    }

    #[test]
    fn defaults_keep_every_room_open() {
        let c = PermissionsConfig::default();
        let g = Grants::default();
        for action in [Action::Join, Action::History, Action::Presence] {
            assert!(allowed(&c, "any", action, &g, false));
        }
        assert!(!allowed(&c, "any", Action::Publish, &g, false));
        assert!(allowed(&c, "any", Action::Publish, &g, true));
        assert!(direct_allowed(&c, &g));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn patterns() {
        assert!(matches("*", "anything"));
        assert!(matches("a:*", "a:"));
        assert!(!matches("a:*", "b:a"));
        assert!(matches("exact", "exact"));
        assert!(!matches("exact", "exactly"));
        assert!(valid_pattern("a*"));
        assert!(!valid_pattern("a*b"));
        assert!(!valid_pattern(""));
        let mut c = config();
        c.namespaces[0].pattern = "*x*".into();
        assert!(c.validate().is_err());
        let mut c = config();
        c.default.join = Access::Members;
        assert!(c.validate().is_err());
        let mut c = config();
        c.namespaces[1].publish = Access::Anyone;
        assert!(c.validate().is_err());
    }
}
