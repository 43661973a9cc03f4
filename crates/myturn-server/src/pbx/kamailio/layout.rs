//! The Redis layout Kamailio's `db_redis` reads, and what one sync pass
//! changes in it: pure data, no I/O.
//!
//! With the keys `deploy/kamailio/kamailio.cfg` declares
//! (`subscriber=entry:username`, `dbaliases=entry:alias_username`,
//! `version=entry:table_name`), a table row is the hash
//! `TABLE:entry::KEY` whose fields are the columns of the table's schema
//! file (Debian's `kamailio-redis-modules`,
//! `/usr/share/kamailio/db_redis/kamailio/`, copied into
//! `deploy/kamailio/db_redis/kamailio/`):
//!
//! * `subscriber:entry::NAME` {username, domain, password}: auth_db's
//!   account, the plain password (`calculate_ha1`).
//! * `dbaliases:entry::EXTENSION` {alias_username, alias_domain, username,
//!   domain}: alias_db's extension → user name, which the INVITE's
//!   Request-URI is rewritten by.
//!
//! (`domain` is the SIP domain's host; the lookups ignore it,
//! `use_domain=0`, as myTurn has one domain.)
//! * `version:entry::TABLE` {table_name, table_version}: the table
//!   versions the modules check when Kamailio starts.
//!
//! Besides them, the server's own index `myturn:kamailio:accounts` (user
//! name → extension) says which rows are the server's, so rows an
//! operator added by hand are never touched, and the marker
//! `myturn:kamailio:layout` tells a Redis that lost its data (a new or
//! flushed database) from one that holds what the last pass wrote.

use std::collections::HashMap;

use crate::core::PbxUser;

/// The server's index of the accounts it wrote: a hash, user name →
/// extension.
pub const INDEX: &str = "myturn:kamailio:accounts";
/// Present (with [`LAYOUT_VERSION`]) once the version rows and the index
/// were written: gone after a flush, so the next pass starts over.
pub const MARKER: &str = "myturn:kamailio:layout";
/// The marker's value: the layout of this module.
pub const LAYOUT_VERSION: &str = "1";

/// The table versions Kamailio 5.6's modules check (the last line of each
/// schema file).
pub const TABLE_VERSIONS: &[(&str, u32)] = &[
    ("subscriber", 7),
    ("dbaliases", 1),
    ("location", 9),
    ("version", 1),
];

/// auth_db's row for `name`.
pub fn subscriber_key(name: &str) -> String {
    format!("subscriber:entry::{name}")
}

/// alias_db's row for `extension`.
pub fn alias_key(extension: u32) -> String {
    format!("dbaliases:entry::{extension}")
}

/// The version row of `table`.
pub fn version_key(table: &str) -> String {
    format!("version:entry::{table}")
}

/// usrloc's set of a user's contacts (`location=…&usrdom:username`).
pub fn bindings_key(name: &str) -> String {
    format!("location:usrdom::{name}")
}

/// usrloc's expiry set a contact sits in (`…&timer:partition,keepalive`).
pub fn timer_key(partition: &str, keepalive: &str) -> String {
    format!("location:timer::{partition}:{keepalive}")
}

/// What Redis holds for one of the server's accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// Its extension (the alias row's key).
    pub extension: u32,
    /// Its password.
    pub secret: String,
}

/// The accounts Redis holds, by user name.
pub type Holding = HashMap<String, Held>;

/// What one pass changes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Accounts to write (new, or with another extension or password).
    pub put: Vec<PbxUser>,
    /// Extensions whose alias row goes (the user left, or moved to
    /// another extension).
    pub drop_aliases: Vec<u32>,
    /// Users who left: their account, index entry and bindings go.
    pub remove: Vec<String>,
}

impl Plan {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.put.is_empty() && self.drop_aliases.is_empty() && self.remove.is_empty()
    }
}

/// The changes that make `held` into `users`: only the accounts that
/// differ, so a registration among 10,000 users writes one account.
pub fn plan(held: &Holding, users: &[PbxUser]) -> Plan {
    let mut p = Plan::default();
    let mut wanted: HashMap<&str, &PbxUser> = HashMap::with_capacity(users.len());
    for u in users {
        wanted.insert(u.name.as_str(), u);
        match held.get(&u.name) {
            Some(h) if h.extension == u.extension && h.secret == u.secret => {}
            Some(h) => {
                if h.extension != u.extension {
                    p.drop_aliases.push(h.extension);
                }
                p.put.push(u.clone());
            }
            None => p.put.push(u.clone()),
        }
    }
    for (name, h) in held {
        if !wanted.contains_key(name.as_str()) {
            p.remove.push(name.clone());
            p.drop_aliases.push(h.extension);
        }
    }
    // An extension dropped by one user and taken by another in the same
    // pass stays: the put rewrites the row.
    let taken: std::collections::HashSet<u32> = p.put.iter().map(|u| u.extension).collect();
    p.drop_aliases.retain(|e| !taken.contains(e));
    p.drop_aliases.sort_unstable();
    p.drop_aliases.dedup();
    p.remove.sort();
    p
}

/// `held` after `plan` was applied.
pub fn applied(held: &mut Holding, plan: &Plan) {
    for name in &plan.remove {
        held.remove(name);
    }
    for u in &plan.put {
        held.insert(
            u.name.clone(),
            Held {
                extension: u.extension,
                secret: u.secret.clone(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, extension: u32, secret: &str) -> PbxUser {
        PbxUser {
            name: name.into(),
            extension,
            secret: secret.into(),
        }
    }

    fn holding(users: &[PbxUser]) -> Holding {
        let mut h = Holding::new();
        applied(
            &mut h,
            &Plan {
                put: users.to_vec(),
                ..Plan::default()
            },
        );
        h
    }

    #[test]
    fn keys_follow_the_db_redis_entry_layout() {
        assert_eq!(subscriber_key("alice"), "subscriber:entry::alice");
        assert_eq!(alias_key(111_000), "dbaliases:entry::111000");
        assert_eq!(version_key("location"), "version:entry::location");
        assert_eq!(bindings_key("alice"), "location:usrdom::alice");
        assert_eq!(timer_key("0", "0"), "location:timer::0:0");
    }

    #[test]
    fn the_table_versions_are_the_shipped_schemas_last_lines() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/kamailio/db_redis/kamailio"
        );
        for (table, version) in TABLE_VERSIONS {
            let text = std::fs::read_to_string(format!("{dir}/{table}")).unwrap();
            let last = text.lines().rfind(|l| !l.trim().is_empty()).unwrap();
            assert_eq!(last.trim(), version.to_string(), "{table}");
        }
    }

    #[test]
    fn an_unchanged_state_plans_nothing() {
        let users = vec![user("alice", 111_000, "a"), user("bob", 111_001, "b")];
        assert!(plan(&holding(&users), &users).is_empty());
    }

    #[test]
    fn one_registration_among_many_writes_one_account() {
        let mut users: Vec<PbxUser> = (0..10_000)
            .map(|i| user(&format!("user{i}"), 111_000 + i, "s"))
            .collect();
        let held = holding(&users);
        users.push(user("newcomer", 121_000, "n"));
        let p = plan(&held, &users);
        assert_eq!(p.put, vec![user("newcomer", 121_000, "n")]);
        assert!(p.remove.is_empty() && p.drop_aliases.is_empty());
    }

    #[test]
    fn a_user_who_left_loses_account_and_alias() {
        let users = vec![user("alice", 111_000, "a"), user("bob", 111_001, "b")];
        let p = plan(&holding(&users), &users[..1]);
        assert_eq!(p.remove, vec!["bob".to_owned()]);
        assert_eq!(p.drop_aliases, vec![111_001]);
        assert!(p.put.is_empty());
    }

    #[test]
    fn a_changed_password_or_extension_is_rewritten() {
        let held = holding(&[user("alice", 111_000, "a"), user("bob", 111_001, "b")]);
        let p = plan(
            &held,
            &[user("alice", 111_000, "new"), user("bob", 111_005, "b")],
        );
        assert_eq!(p.put.len(), 2);
        assert_eq!(p.drop_aliases, vec![111_001]);
        assert!(p.remove.is_empty());
    }

    #[test]
    fn an_extension_reused_in_the_same_pass_is_not_dropped() {
        let held = holding(&[user("alice", 111_000, "a")]);
        let p = plan(&held, &[user("carol", 111_000, "c")]);
        assert_eq!(p.remove, vec!["alice".to_owned()]);
        assert!(p.drop_aliases.is_empty(), "{p:?}");
        assert_eq!(p.put, vec![user("carol", 111_000, "c")]);
        let mut after = held;
        applied(&mut after, &p);
        assert!(plan(&after, &[user("carol", 111_000, "c")]).is_empty());
    }
}
