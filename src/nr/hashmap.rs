//! A replicated hash map.

use super::{Dispatch, Handle, NodeReplicated, NrConfig, NrError};
use crate::Topology;
use std::collections::HashMap;
use std::hash::Hash;
use std::ops::Deref;

/// The sequential map that [`ReplicatedHashMap`] replicates: a `std` [`HashMap`].
///
/// ```
/// use replicore::nr::{Dispatch, HashMapRead, HashMapResponse, HashMapWrite, SeqHashMap};
/// let mut m = SeqHashMap::default();
/// m.dispatch_mut(HashMapWrite::Insert(1u8, 'a'));
/// assert_eq!(m.dispatch(HashMapRead::Get(&1)), HashMapResponse::Value(Some('a')));
/// ```
#[derive(Debug, Clone)]
pub struct SeqHashMap<K, V>(pub HashMap<K, V>);

impl<K, V> Default for SeqHashMap<K, V> {
    fn default() -> Self {
        Self(HashMap::new())
    }
}

/// Reads of a [`SeqHashMap`]; a lookup borrows its key.
///
/// ```
/// use replicore::nr::HashMapRead;
/// let _ = HashMapRead::Get(&7u64);
/// ```
#[derive(Debug, Clone, Copy)]
pub enum HashMapRead<'a, K> {
    /// The value at a key.
    Get(&'a K),
    /// The number of entries.
    Len,
}

/// Writes of a [`SeqHashMap`].
///
/// ```
/// use replicore::nr::HashMapWrite;
/// let _ = HashMapWrite::Insert(1u64, 2u64);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashMapWrite<K, V> {
    /// Inserts, returning the previous value.
    Insert(K, V),
    /// Removes, returning the previous value.
    Remove(K),
}

/// Responses of a [`SeqHashMap`].
///
/// ```
/// use replicore::nr::HashMapResponse;
/// assert_eq!(HashMapResponse::<u8>::Len(0).into_len(), 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashMapResponse<V> {
    /// A value, or its absence.
    Value(Option<V>),
    /// A number of entries.
    Len(usize),
}

impl<V> HashMapResponse<V> {
    /// The value of a `Value` response (`None` for `Len`).
    ///
    /// ```
    /// use replicore::nr::HashMapResponse;
    /// assert_eq!(HashMapResponse::Value(Some(3)).into_value(), Some(3));
    /// ```
    pub fn into_value(self) -> Option<V> {
        match self {
            HashMapResponse::Value(v) => v,
            HashMapResponse::Len(_) => None,
        }
    }

    /// The count of a `Len` response (0 for `Value`).
    ///
    /// ```
    /// use replicore::nr::HashMapResponse;
    /// assert_eq!(HashMapResponse::<u8>::Len(4).into_len(), 4);
    /// ```
    pub fn into_len(self) -> usize {
        match self {
            HashMapResponse::Len(n) => n,
            HashMapResponse::Value(_) => 0,
        }
    }
}

impl<K, V> Dispatch for SeqHashMap<K, V>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    type ReadOp<'a>
        = HashMapRead<'a, K>
    where
        Self: 'a;
    type WriteOp = HashMapWrite<K, V>;
    type Response = HashMapResponse<V>;

    fn dispatch<'a>(&self, op: HashMapRead<'a, K>) -> HashMapResponse<V> {
        match op {
            HashMapRead::Get(k) => HashMapResponse::Value(self.0.get(k).cloned()),
            HashMapRead::Len => HashMapResponse::Len(self.0.len()),
        }
    }

    fn dispatch_mut(&mut self, op: HashMapWrite<K, V>) -> HashMapResponse<V> {
        match op {
            HashMapWrite::Insert(k, v) => HashMapResponse::Value(self.0.insert(k, v)),
            HashMapWrite::Remove(k) => HashMapResponse::Value(self.0.remove(&k)),
        }
    }
}

/// A hash map replicated per NUMA node. Use it through a [`MapHandle`].
///
/// ```
/// use replicore::nr::ReplicatedHashMap;
/// let topo = replicore::Topology::synthetic(2, 1, 1)?;
/// let map = ReplicatedHashMap::new(&topo)?;
/// let h = map.register(topo.nodes()[0])?;
/// assert_eq!(h.insert("k", 1), None);
/// assert_eq!(h.remove(&"k"), Some(1));
/// assert_eq!(h.len(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ReplicatedHashMap<K, V>(NodeReplicated<SeqHashMap<K, V>>)
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync;

/// A thread's handle on a [`ReplicatedHashMap`].
///
/// ```
/// use replicore::nr::{MapHandle, ReplicatedHashMap};
/// fn count_word(h: &MapHandle<'_, String, u32>, word: &str) {
///     let n = h.get(&word.to_string()).unwrap_or(0);
///     h.insert(word.to_string(), n + 1);
/// }
/// let topo = replicore::Topology::synthetic(1, 1, 1)?;
/// let map = ReplicatedHashMap::new(&topo)?;
/// let h = map.register(topo.nodes()[0])?;
/// count_word(&h, "node");
/// count_word(&h, "node");
/// assert_eq!(h.get(&"node".to_string()), Some(2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type MapHandle<'a, K, V> = Handle<'a, SeqHashMap<K, V>>;

impl<K, V> ReplicatedHashMap<K, V>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    /// An empty map with one replica per node of `topo`.
    ///
    /// ```
    /// # use replicore::nr::ReplicatedHashMap;
    /// let topo = replicore::Topology::synthetic(3, 1, 1)?;
    /// let map = ReplicatedHashMap::<u64, u64>::new(&topo)?;
    /// assert_eq!(map.num_replicas(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(topo: &Topology) -> Result<Self, NrError> {
        NodeReplicated::new(topo, SeqHashMap::default).map(Self)
    }

    /// A map whose replicas start as clones of `init`, with explicit sizes.
    ///
    /// ```
    /// # use replicore::nr::{NrConfig, ReplicatedHashMap};
    /// let topo = replicore::Topology::synthetic(2, 1, 1)?;
    /// let init: std::collections::HashMap<u64, u64> = (0..10).map(|k| (k, k)).collect();
    /// let map = ReplicatedHashMap::with_contents(&topo, NrConfig::default(), &init)?;
    /// assert_eq!(map.register(topo.nodes()[1])?.get(&3), Some(3));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_contents(
        topo: &Topology,
        config: NrConfig,
        init: &HashMap<K, V>,
    ) -> Result<Self, NrError> {
        NodeReplicated::with_config(topo, config, || SeqHashMap(init.clone())).map(Self)
    }
}

impl<K, V> From<NodeReplicated<SeqHashMap<K, V>>> for ReplicatedHashMap<K, V>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    /// Wraps a map built with [`NrBuilder`](super::NrBuilder) (for example with helpers).
    ///
    /// ```
    /// # use replicore::nr::{HelperConfig, NrBuilder, ReplicatedHashMap, SeqHashMap};
    /// let topo = replicore::Topology::synthetic(2, 1, 1)?;
    /// let nr = NrBuilder::new(&topo).helper(HelperConfig::default()).build(SeqHashMap::default)?;
    /// let map = ReplicatedHashMap::from(nr);
    /// assert_eq!(map.register(topo.nodes()[1])?.insert(1u32, 'a'), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn from(nr: NodeReplicated<SeqHashMap<K, V>>) -> Self {
        Self(nr)
    }
}

impl<K, V> Deref for ReplicatedHashMap<K, V>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    type Target = NodeReplicated<SeqHashMap<K, V>>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<K, V> Handle<'_, SeqHashMap<K, V>>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    /// The value at `key` (linearizable).
    ///
    /// ```
    /// # use replicore::nr::ReplicatedHashMap;
    /// # let topo = replicore::Topology::synthetic(1, 1, 1)?;
    /// # let map = ReplicatedHashMap::new(&topo)?;
    /// let h = map.register(topo.nodes()[0])?;
    /// h.insert(1u32, 10u32);
    /// assert_eq!(h.get(&1), Some(10));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get(&self, key: &K) -> Option<V> {
        self.execute(HashMapRead::Get(key)).into_value()
    }

    /// Inserts, returning the previous value.
    ///
    /// ```
    /// # use replicore::nr::ReplicatedHashMap;
    /// # let topo = replicore::Topology::synthetic(1, 1, 1)?;
    /// # let map = ReplicatedHashMap::new(&topo)?;
    /// let h = map.register(topo.nodes()[0])?;
    /// assert_eq!(h.insert(1u32, 10u32), None);
    /// assert_eq!(h.insert(1, 11), Some(10));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn insert(&self, key: K, value: V) -> Option<V> {
        self.execute_mut(HashMapWrite::Insert(key, value))
            .into_value()
    }

    /// Removes, returning the previous value.
    ///
    /// ```
    /// # use replicore::nr::ReplicatedHashMap;
    /// # let topo = replicore::Topology::synthetic(1, 1, 1)?;
    /// # let map = ReplicatedHashMap::new(&topo)?;
    /// let h = map.register(topo.nodes()[0])?;
    /// h.insert(1u32, 10u32);
    /// assert_eq!(h.remove(&1), Some(10));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove(&self, key: &K) -> Option<V> {
        self.execute_mut(HashMapWrite::Remove(key.clone()))
            .into_value()
    }

    /// The number of entries (linearizable).
    ///
    /// ```
    /// # use replicore::nr::ReplicatedHashMap;
    /// # let topo = replicore::Topology::synthetic(1, 1, 1)?;
    /// # let map = ReplicatedHashMap::<u8, u8>::new(&topo)?;
    /// assert_eq!(map.register(topo.nodes()[0])?.len(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.execute(HashMapRead::Len).into_len()
    }

    /// Whether the map is empty (linearizable).
    ///
    /// ```
    /// # use replicore::nr::ReplicatedHashMap;
    /// # let topo = replicore::Topology::synthetic(1, 1, 1)?;
    /// # let map = ReplicatedHashMap::<u8, u8>::new(&topo)?;
    /// assert!(map.register(topo.nodes()[0])?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
