//! [`MemState`]: every record in this process's memory, in hash maps.

use std::collections::{HashMap, HashSet, VecDeque};

use myturn_wire::{Ban, Report};

use super::{
    name_key, Bucket, DrawKey, Due, LimitKey, Millis, RefreshEntry, State, User, UserId,
    FIRST_EXTENSION,
};

/// A set of users kept in a list, for uniform picks by index: insertion
/// appends, removal swaps the last one into the hole (O(1) both).
#[derive(Debug, Default)]
struct Members {
    list: Vec<UserId>,
    at: HashMap<UserId, usize>,
}

impl Members {
    fn insert(&mut self, id: UserId) {
        if let std::collections::hash_map::Entry::Vacant(e) = self.at.entry(id) {
            e.insert(self.list.len());
            self.list.push(id);
        }
    }

    fn remove(&mut self, id: UserId) {
        let Some(i) = self.at.remove(&id) else { return };
        self.list.swap_remove(i);
        if let Some(&moved) = self.list.get(i) {
            self.at.insert(moved, i);
        }
    }
}

/// The in-memory [`State`]. Plain data: the memory store keeps one behind
/// one lock.
#[derive(Default)]
pub struct MemState {
    users: HashMap<UserId, User>,
    by_name: HashMap<String, UserId>,
    by_ext: HashMap<u32, UserId>,
    pool: Members,
    draws: HashMap<DrawKey, Members>,
    lobby: HashSet<UserId>,
    last_id: UserId,
    ext_cursor: Option<u32>,
    pairings_total: u64,
    refresh: HashMap<[u8; 32], RefreshEntry>,
    /// family → owner; a family missing here is revoked.
    families: HashMap<u64, UserId>,
    last_family: u64,
    bans: HashMap<String, u64>,
    reports: VecDeque<Report>,
    buckets: HashMap<LimitKey, Bucket>,
}

impl std::fmt::Debug for MemState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemState")
            .field("users", &self.users.len())
            .field("pool", &self.pool.list.len())
            .field("families", &self.families.len())
            .finish_non_exhaustive()
    }
}

impl State for MemState {
    fn user(&self, id: UserId) -> Option<&User> {
        self.users.get(&id)
    }
    fn user_mut(&mut self, id: UserId) -> Option<&mut User> {
        self.users.get_mut(&id)
    }
    fn insert_user(&mut self, user: User) {
        self.by_name.insert(name_key(&user.name), user.id);
        self.by_ext.insert(user.extension, user.id);
        self.users.insert(user.id, user);
    }
    fn remove_user(&mut self, id: UserId) -> Option<User> {
        let user = self.users.remove(&id)?;
        self.by_name.remove(&name_key(&user.name));
        self.by_ext.remove(&user.extension);
        self.lobby.remove(&id);
        Some(user)
    }
    fn user_by_name(&self, name: &str) -> Option<UserId> {
        self.by_name.get(&name_key(name)).copied()
    }
    fn user_by_extension(&self, extension: u32) -> Option<UserId> {
        self.by_ext.get(&extension).copied()
    }
    fn user_count(&self) -> usize {
        self.users.len()
    }
    fn users(&self) -> Box<dyn Iterator<Item = &User> + '_> {
        Box::new(self.users.values())
    }
    fn due(&self, _: Due, by: Millis, key: &dyn Fn(&User) -> Option<Millis>) -> Vec<UserId> {
        // No index: the scan is the definition.
        self.users
            .values()
            .filter(|u| key(u).is_some_and(|t| t <= by))
            .map(|u| u.id)
            .collect()
    }
    fn next_due(
        &self,
        _: Due,
        after: Millis,
        key: &dyn Fn(&User) -> Option<Millis>,
    ) -> Option<Millis> {
        self.users
            .values()
            .filter_map(key)
            .filter(|&t| t > after)
            .min()
    }
    fn users_on_node(&self, node: &str) -> Vec<UserId> {
        self.users
            .values()
            .filter(|u| u.stream_node.as_deref() == Some(node))
            .map(|u| u.id)
            .collect()
    }
    fn next_user_id(&mut self) -> UserId {
        self.last_id += 1;
        self.last_id
    }
    fn extension_cursor(&mut self) -> &mut u32 {
        self.ext_cursor.get_or_insert(FIRST_EXTENSION)
    }

    fn pool(&self) -> &[UserId] {
        &self.pool.list
    }
    fn pool_insert(&mut self, id: UserId) {
        self.pool.insert(id);
    }
    fn pool_remove(&mut self, id: UserId) {
        self.pool.remove(id);
    }
    fn draw(&self, key: &DrawKey) -> &[UserId] {
        self.draws.get(key).map_or(&[], |m| &m.list)
    }
    fn draw_insert(&mut self, key: &DrawKey, id: UserId) {
        self.draws.entry(key.clone()).or_default().insert(id);
    }
    fn draw_remove(&mut self, key: &DrawKey, id: UserId) {
        if let Some(m) = self.draws.get_mut(key) {
            m.remove(id);
            if m.list.is_empty() {
                self.draws.remove(key);
            }
        }
    }
    fn crowded_draws(&self) -> Vec<DrawKey> {
        let mut v: Vec<DrawKey> = self
            .draws
            .iter()
            .filter(|(_, m)| m.list.len() >= 2)
            .map(|(k, _)| k.clone())
            .collect();
        v.sort();
        v
    }
    fn lobby(&self) -> Box<dyn Iterator<Item = UserId> + '_> {
        Box::new(self.lobby.iter().copied())
    }
    fn in_lobby(&self, id: UserId) -> bool {
        self.lobby.contains(&id)
    }
    fn set_in_lobby(&mut self, id: UserId, member: bool) {
        if member {
            self.lobby.insert(id);
        } else {
            self.lobby.remove(&id);
        }
    }
    fn count_pairing(&mut self) {
        self.pairings_total += 1;
    }
    fn pairings_total(&self) -> u64 {
        self.pairings_total
    }

    fn open_family(&mut self, uid: UserId) -> u64 {
        self.last_family += 1;
        self.families.insert(self.last_family, uid);
        self.last_family
    }
    fn family_owner(&self, family: u64) -> Option<UserId> {
        self.families.get(&family).copied()
    }
    fn close_family(&mut self, family: u64) {
        self.families.remove(&family);
        self.refresh.retain(|_, e| e.family != family);
    }
    fn families_of(&self, uid: UserId) -> Vec<u64> {
        self.families
            .iter()
            .filter(|(_, &u)| u == uid)
            .map(|(&f, _)| f)
            .collect()
    }
    fn refresh_token(&self, hash: &[u8; 32]) -> Option<RefreshEntry> {
        self.refresh.get(hash).copied()
    }
    fn put_refresh_token(&mut self, hash: [u8; 32], entry: RefreshEntry) {
        self.refresh.insert(hash, entry);
    }

    fn ban_until(&self, key: &str) -> Option<u64> {
        self.bans.get(key).copied()
    }
    fn set_ban(&mut self, key: String, until_unix: u64) {
        self.bans.insert(key, until_unix);
    }
    fn lift_ban(&mut self, key: &str) -> bool {
        self.bans.remove(key).is_some()
    }
    fn bans_in_force(&mut self, now_unix: u64) -> Vec<Ban> {
        self.bans.retain(|_, &mut u| u > now_unix);
        let mut v: Vec<Ban> = self
            .bans
            .iter()
            .map(|(n, &u)| Ban {
                name: n.clone(),
                until: u,
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
    fn add_report(&mut self, report: Report, cap: usize) {
        if self.reports.len() >= cap {
            self.reports.pop_front();
        }
        self.reports.push_back(report);
    }
    fn reports(&self) -> Vec<Report> {
        self.reports.iter().cloned().collect()
    }
    fn bucket(&self, key: &LimitKey) -> Option<Bucket> {
        self.buckets.get(key).copied()
    }
    fn put_bucket(&mut self, key: LimitKey, bucket: Bucket) {
        self.buckets.insert(key, bucket);
    }
    fn retain_buckets(&mut self, keep: &mut dyn FnMut(&LimitKey, &Bucket) -> bool) {
        self.buckets.retain(|k, b| keep(k, b));
    }
}

impl MemState {
    /// Tests only: rate-limit buckets held.
    #[cfg(test)]
    pub(crate) fn bucket_count(&self) -> usize {
        self.buckets.len()
    }
}
