//! [`TxState`]: one attempt at a command, as a [`State`] over the records
//! read from Redis so far. Reads it lacks are recorded as [`Need`]s (and
//! answered as if empty: the attempt is thrown away and run again once
//! they are read); writes are kept, to become the commit's operations.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use myturn_wire::{Ban, Report, Status};

use super::keys;
use crate::core::state::{
    name_key, Bucket, DrawKey, Due, LimitKey, Millis, RefreshEntry, State, User, UserId,
    FIRST_EXTENSION,
};

/// A read an attempt lacked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Need {
    /// A string key.
    Str(String),
    /// A set's members.
    Set(String),
    /// A list.
    List(String),
    /// A set's size.
    Card(String),
    /// Whether a set holds one user id.
    Member(String, UserId),
    /// A user's record (and its last activity).
    User(UserId),
    /// The users due for a sweep by a moment (a hint: not versioned).
    Due(Due, Millis),
    /// The earliest moment a user is due after one (a hint: not
    /// versioned).
    NextDue(Due, Millis),
    /// The draws holding two or more (a hint: not versioned).
    Crowded,
    /// Every user id (for the admin views: not versioned).
    AllUsers,
    /// Users per status (for `/metrics`: not versioned).
    Statuses,
}

/// What has been read, with the version each key was read at.
#[derive(Debug, Default, Clone)]
pub(super) struct Loaded {
    pub(super) strs: HashMap<String, Option<String>>,
    pub(super) sets: HashMap<String, Vec<String>>,
    pub(super) lists: HashMap<String, Vec<String>>,
    pub(super) cards: HashMap<String, u64>,
    pub(super) members: HashMap<(String, UserId), bool>,
    pub(super) users: HashMap<UserId, Option<User>>,
    pub(super) dues: HashMap<(Due, Millis), Vec<UserId>>,
    pub(super) next_dues: HashMap<(Due, Millis), Option<Millis>>,
    pub(super) crowded: Option<Vec<String>>,
    pub(super) all_users: Option<Vec<UserId>>,
    pub(super) statuses: Option<HashMap<String, u64>>,
    /// Key → version as read ("0": never written). The commit checks each.
    pub(super) versions: BTreeMap<String, String>,
}

/// A set being changed: its members (if read) and the changes.
#[derive(Debug, Default, Clone)]
pub(super) struct SetWork<T: Ord + Clone> {
    /// The members as they are now in this attempt (if the set was read).
    pub(super) members: Option<Vec<T>>,
    pub(super) added: BTreeSet<T>,
    pub(super) removed: BTreeSet<T>,
}

impl<T: Ord + Clone> SetWork<T> {
    fn from(members: Option<Vec<T>>) -> Self {
        SetWork {
            members,
            added: BTreeSet::new(),
            removed: BTreeSet::new(),
        }
    }

    fn insert(&mut self, v: T) {
        if let Some(m) = &mut self.members {
            if m.contains(&v) {
                return;
            }
            m.push(v.clone());
        }
        self.removed.remove(&v);
        self.added.insert(v);
    }

    fn remove(&mut self, v: &T) {
        if let Some(m) = &mut self.members {
            if let Some(i) = m.iter().position(|x| x == v) {
                m.swap_remove(i);
            }
        }
        self.added.remove(v);
        self.removed.insert(v.clone());
    }
}

/// A string key being changed: its new value (`None`: delete) and, for
/// rate-limit buckets, how long it lives.
#[derive(Debug, Clone)]
pub(super) struct StrWrite {
    pub(super) value: Option<String>,
    pub(super) ttl_ms: Option<u64>,
}

/// One attempt. See the module docs.
#[derive(Debug)]
pub(super) struct TxState<'a> {
    loaded: &'a Loaded,
    misses: RefCell<BTreeSet<Need>>,
    pub(super) users: HashMap<UserId, Option<User>>,
    pub(super) dirty_users: BTreeSet<UserId>,
    pub(super) ids: HashMap<String, SetWork<UserId>>,
    pub(super) strsets: HashMap<String, SetWork<String>>,
    pub(super) strs: BTreeMap<String, StrWrite>,
    pub(super) pairings: u64,
    pub(super) reports: Vec<String>,
    pub(super) report_cap: usize,
    cursor: Option<u32>,
    cursor_read: Option<u32>,
    scratch_cursor: u32,
    /// Views built on demand (bans in force), kept for their lifetime.
    empty: Vec<UserId>,
}

/// How long a rate-limit bucket lives: longer than any budget's full
/// refill (a bucket that old behaves as a full one, so expiring it is
/// what pruning does in memory).
const BUCKET_TTL_MS: u64 = 15 * 60 * 1000;

impl<'a> TxState<'a> {
    /// An attempt over what `loaded` holds.
    pub(super) fn new(loaded: &'a Loaded) -> Self {
        let ids = [keys::pool(), keys::lobby()]
            .into_iter()
            .chain(loaded.sets.keys().filter(|k| is_id_set(k)).cloned())
            .map(|k| {
                let m = loaded.sets.get(&k).map(|v| parse_ids(v));
                (k, SetWork::from(m))
            })
            .collect();
        let strsets = loaded
            .sets
            .iter()
            .filter(|(k, _)| !is_id_set(k))
            .map(|(k, v)| (k.clone(), SetWork::from(Some(v.clone()))))
            .collect();
        let cursor_read = loaded.strs.get(&keys::counter("ext")).map(|v| {
            v.as_deref()
                .and_then(|s| s.parse().ok())
                .unwrap_or(FIRST_EXTENSION)
        });
        TxState {
            loaded,
            misses: RefCell::new(BTreeSet::new()),
            users: loaded.users.clone(),
            dirty_users: BTreeSet::new(),
            ids,
            strsets,
            strs: BTreeMap::new(),
            pairings: 0,
            reports: Vec::new(),
            report_cap: 0,
            cursor: cursor_read,
            cursor_read,
            scratch_cursor: FIRST_EXTENSION,
            empty: Vec::new(),
        }
    }

    /// The reads this attempt lacked (empty: it ran on complete data).
    pub(super) fn misses(&self) -> BTreeSet<Need> {
        self.misses.borrow().clone()
    }

    /// The cursor's new value, if it moved.
    pub(super) fn cursor_write(&self) -> Option<u32> {
        (self.cursor != self.cursor_read)
            .then_some(self.cursor)
            .flatten()
    }

    fn miss(&self, n: Need) {
        self.misses.borrow_mut().insert(n);
    }

    /// A string key: as written in this attempt, else as read.
    fn str(&self, key: &str) -> Option<String> {
        if let Some(w) = self.strs.get(key) {
            return w.value.clone();
        }
        match self.loaded.strs.get(key) {
            Some(v) => v.clone(),
            None => {
                self.miss(Need::Str(key.to_owned()));
                None
            }
        }
    }

    fn set_str(&mut self, key: String, value: Option<String>) {
        self.strs.insert(
            key,
            StrWrite {
                value,
                ttl_ms: None,
            },
        );
    }

    fn id_set(&self, key: &str) -> &[UserId] {
        match self.ids.get(key).and_then(|w| w.members.as_ref()) {
            Some(m) => m,
            None => {
                self.miss(Need::Set(key.to_owned()));
                &self.empty
            }
        }
    }

    /// Whether an id set holds `id`: from its members if they were read,
    /// else from this attempt's own changes, else asked of Redis alone.
    fn is_member(&self, key: &str, id: UserId) -> bool {
        if let Some(w) = self.ids.get(key) {
            if let Some(m) = &w.members {
                return m.contains(&id);
            }
            if w.added.contains(&id) {
                return true;
            }
            if w.removed.contains(&id) {
                return false;
            }
        }
        match self.loaded.members.get(&(key.to_owned(), id)) {
            Some(&held) => held,
            None => {
                self.miss(Need::Member(key.to_owned(), id));
                false
            }
        }
    }

    /// An id set's size: from its members if they were read, else its
    /// size as read with this attempt's changes.
    fn card(&self, key: &str) -> usize {
        let w = self.ids.get(key);
        if let Some(m) = w.and_then(|w| w.members.as_ref()) {
            return m.len();
        }
        let Some(&n) = self.loaded.cards.get(key) else {
            self.miss(Need::Card(key.to_owned()));
            return 0;
        };
        let added = w.map_or(0, |w| w.added.len());
        let removed = w.map_or(0, |w| w.removed.len());
        (n as usize + added).saturating_sub(removed)
    }

    fn id_set_mut(&mut self, key: &str) -> &mut SetWork<UserId> {
        self.ids.entry(key.to_owned()).or_default()
    }

    fn str_set(&self, key: &str) -> Vec<String> {
        let mut v = match self.loaded.sets.get(key) {
            Some(m) => m.clone(),
            None => {
                self.miss(Need::Set(key.to_owned()));
                return Vec::new();
            }
        };
        if let Some(w) = self.strsets.get(key) {
            v.retain(|x| !w.removed.contains(x));
            v.extend(
                w.added
                    .iter()
                    .filter(|x| !v.contains(x))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
        }
        v
    }

    fn str_set_mut(&mut self, key: &str) -> &mut SetWork<String> {
        self.strsets.entry(key.to_owned()).or_default()
    }

    fn counter(&mut self, what: &str) -> u64 {
        let key = keys::counter(what);
        let next = self
            .str(&key)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        self.set_str(key, Some(next.to_string()));
        next
    }

    fn json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.str(key).and_then(|v| serde_json::from_str(&v).ok())
    }
}

/// Whether a set key holds user ids (the pool, the lobby, draws).
pub(super) fn is_id_set(key: &str) -> bool {
    key == keys::pool()
        || key == keys::lobby()
        || key == keys::users()
        || keys::draw_of(key).is_some()
        || key.starts_with(&keys::node_users(""))
}

fn parse_ids(v: &[String]) -> Vec<UserId> {
    v.iter().filter_map(|s| s.parse().ok()).collect()
}

impl State for TxState<'_> {
    fn reading(&self) -> bool {
        !self.misses.borrow().is_empty()
    }
    fn user(&self, id: UserId) -> Option<&User> {
        match self.users.get(&id) {
            Some(u) => u.as_ref(),
            None => {
                self.miss(Need::User(id));
                None
            }
        }
    }
    fn user_mut(&mut self, id: UserId) -> Option<&mut User> {
        if !self.users.contains_key(&id) {
            self.miss(Need::User(id));
            return None;
        }
        self.dirty_users.insert(id);
        self.users.get_mut(&id).and_then(Option::as_mut)
    }
    fn insert_user(&mut self, user: User) {
        let id = user.id;
        self.set_str(keys::name(&name_key(&user.name)), Some(id.to_string()));
        self.set_str(keys::extension(user.extension), Some(id.to_string()));
        self.id_set_mut(&keys::users()).insert(id);
        self.users.insert(id, Some(user));
        self.dirty_users.insert(id);
    }
    fn remove_user(&mut self, id: UserId) -> Option<User> {
        let user = self.users.get_mut(&id)?.take()?;
        self.dirty_users.insert(id);
        self.set_str(keys::name(&name_key(&user.name)), None);
        self.set_str(keys::extension(user.extension), None);
        self.id_set_mut(&keys::users()).remove(&id);
        self.id_set_mut(&keys::lobby()).remove(&id);
        Some(user)
    }
    fn user_by_name(&self, name: &str) -> Option<UserId> {
        self.str(&keys::name(&name_key(name)))?.parse().ok()
    }
    fn user_by_extension(&self, extension: u32) -> Option<UserId> {
        self.str(&keys::extension(extension))?.parse().ok()
    }
    fn user_count(&self) -> usize {
        self.card(&keys::users())
    }
    fn status_counts(&self) -> Vec<(Status, u64)> {
        let Some(by) = &self.loaded.statuses else {
            self.miss(Need::Statuses);
            return Vec::new();
        };
        Status::ALL
            .iter()
            .map(|s| (*s, by.get(s.as_str()).copied().unwrap_or(0)))
            .collect()
    }
    fn users(&self) -> Box<dyn Iterator<Item = &User> + '_> {
        let Some(all) = &self.loaded.all_users else {
            self.miss(Need::AllUsers);
            return Box::new(std::iter::empty());
        };
        for id in all {
            if !self.users.contains_key(id) {
                self.miss(Need::User(*id));
            }
        }
        Box::new(self.users.values().filter_map(Option::as_ref))
    }
    fn due(&self, due: Due, by: Millis, _: &dyn Fn(&User) -> Option<Millis>) -> Vec<UserId> {
        match self.loaded.dues.get(&(due, by)) {
            Some(v) => v.clone(),
            None => {
                self.miss(Need::Due(due, by));
                Vec::new()
            }
        }
    }
    fn next_due(
        &self,
        due: Due,
        after: Millis,
        _: &dyn Fn(&User) -> Option<Millis>,
    ) -> Option<Millis> {
        match self.loaded.next_dues.get(&(due, after)) {
            Some(t) => *t,
            None => {
                self.miss(Need::NextDue(due, after));
                None
            }
        }
    }
    fn users_on_node(&self, node: &str) -> Vec<UserId> {
        self.id_set(&keys::node_users(node)).to_vec()
    }
    fn next_user_id(&mut self) -> UserId {
        self.counter("next-user")
    }
    fn extension_cursor(&mut self) -> &mut u32 {
        if self.cursor.is_none() {
            self.miss(Need::Str(keys::counter("ext")));
        }
        match &mut self.cursor {
            Some(c) => c,
            None => &mut self.scratch_cursor,
        }
    }

    fn pool(&self) -> &[UserId] {
        self.id_set(&keys::pool())
    }
    fn in_pool(&self, id: UserId) -> bool {
        self.is_member(&keys::pool(), id)
    }
    fn pool_len(&self) -> usize {
        self.card(&keys::pool())
    }
    fn pool_insert(&mut self, id: UserId) {
        self.id_set_mut(&keys::pool()).insert(id);
    }
    fn pool_remove(&mut self, id: UserId) {
        self.id_set_mut(&keys::pool()).remove(&id);
    }
    fn draw(&self, key: &DrawKey) -> &[UserId] {
        self.id_set(&keys::draw(key))
    }
    fn draw_insert(&mut self, key: &DrawKey, id: UserId) {
        self.id_set_mut(&keys::draw(key)).insert(id);
    }
    fn draw_remove(&mut self, key: &DrawKey, id: UserId) {
        self.id_set_mut(&keys::draw(key)).remove(&id);
    }
    fn crowded_draws(&self) -> Vec<DrawKey> {
        let Some(c) = &self.loaded.crowded else {
            self.miss(Need::Crowded);
            return Vec::new();
        };
        let mut v: Vec<DrawKey> = c.iter().filter_map(|k| keys::draw_of(k)).collect();
        v.sort();
        v
    }
    fn lobby(&self) -> Box<dyn Iterator<Item = UserId> + '_> {
        Box::new(self.id_set(&keys::lobby()).iter().copied())
    }
    fn in_lobby(&self, id: UserId) -> bool {
        self.is_member(&keys::lobby(), id)
    }
    fn set_in_lobby(&mut self, id: UserId, member: bool) {
        let w = self.id_set_mut(&keys::lobby());
        if member {
            w.insert(id);
        } else {
            w.remove(&id);
        }
    }
    fn count_pairing(&mut self) {
        self.pairings += 1;
    }
    fn pairings_total(&self) -> u64 {
        let key = keys::counter("pairings");
        self.str(&key).and_then(|v| v.parse().ok()).unwrap_or(0) + self.pairings
    }

    fn open_family(&mut self, uid: UserId) -> u64 {
        let f = self.counter("next-family");
        self.set_str(keys::family(f), Some(uid.to_string()));
        self.str_set_mut(&keys::user_families(uid))
            .insert(f.to_string());
        f
    }
    fn family_owner(&self, family: u64) -> Option<UserId> {
        self.str(&keys::family(family))?.parse().ok()
    }
    fn close_family(&mut self, family: u64) {
        if let Some(owner) = self.family_owner(family) {
            self.str_set_mut(&keys::user_families(owner))
                .remove(&family.to_string());
        }
        let tokens = self.str_set(&keys::family_tokens(family));
        for t in tokens {
            self.set_str(keys::refresh(&t), None);
            self.str_set_mut(&keys::family_tokens(family)).remove(&t);
        }
        self.set_str(keys::family(family), None);
    }
    fn families_of(&self, uid: UserId) -> Vec<u64> {
        self.str_set(&keys::user_families(uid))
            .iter()
            .filter_map(|f| f.parse().ok())
            .collect()
    }
    fn refresh_token(&self, hash: &[u8; 32]) -> Option<RefreshEntry> {
        self.json(&keys::refresh(&keys::hex(hash)))
    }
    fn put_refresh_token(&mut self, hash: [u8; 32], entry: RefreshEntry) {
        let hex = keys::hex(&hash);
        self.set_str(keys::refresh(&hex), serde_json::to_string(&entry).ok());
        self.str_set_mut(&keys::family_tokens(entry.family))
            .insert(hex);
    }

    fn ban_until(&self, key: &str) -> Option<u64> {
        self.str(&keys::ban(key))?.parse().ok()
    }
    fn set_ban(&mut self, key: String, until_unix: u64) {
        self.set_str(keys::ban(&key), Some(until_unix.to_string()));
        self.str_set_mut(&keys::bans()).insert(key);
    }
    fn lift_ban(&mut self, key: &str) -> bool {
        let had = self.ban_until(key).is_some();
        self.set_str(keys::ban(key), None);
        self.str_set_mut(&keys::bans()).remove(&key.to_owned());
        had
    }
    fn bans_in_force(&mut self, now_unix: u64) -> Vec<Ban> {
        let mut out = Vec::new();
        for name in self.str_set(&keys::bans()) {
            match self.ban_until(&name) {
                Some(until) if until > now_unix => out.push(Ban { name, until }),
                Some(_) => {
                    self.lift_ban(&name);
                }
                None => {}
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
    fn add_report(&mut self, report: Report, cap: usize) {
        if let Ok(j) = serde_json::to_string(&report) {
            self.reports.push(j);
        }
        self.report_cap = cap;
    }
    fn reports(&self) -> Vec<Report> {
        let key = keys::reports();
        let Some(l) = self.loaded.lists.get(&key) else {
            self.miss(Need::List(key));
            return Vec::new();
        };
        l.iter()
            .chain(self.reports.iter())
            .filter_map(|j| serde_json::from_str(j).ok())
            .collect()
    }
    fn bucket(&self, key: &LimitKey) -> Option<Bucket> {
        self.json(&keys::bucket(key))
    }
    fn put_bucket(&mut self, key: LimitKey, bucket: Bucket) {
        self.strs.insert(
            keys::bucket(&key),
            StrWrite {
                value: serde_json::to_string(&bucket).ok(),
                ttl_ms: Some(BUCKET_TTL_MS),
            },
        );
    }
    fn retain_buckets(&mut self, _: &mut dyn FnMut(&LimitKey, &Bucket) -> bool) {
        // Buckets expire by themselves (BUCKET_TTL_MS).
    }
}
