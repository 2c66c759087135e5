//! Route patterns compiled into a word trie (as RabbitMQ's topic exchange does), so
//! that matching costs the length of the type, not the number of routes.
//!
//! Matching is linear in (words of the type) x (nodes of the trie) whatever the
//! patterns: the trie is walked as a set of states with an explicit stack (no
//! recursion, so a type of any length cannot exhaust the thread's stack), and each
//! state is visited at most once.

use std::collections::HashMap;

use super::pattern::Word;

/// Route patterns compiled into a trie of words; each terminal node lists the routes
/// (by index) whose pattern ends there.
#[derive(Debug, Default, Clone)]
pub struct TopicTrie {
    nodes: Vec<Node>,
}

#[derive(Debug, Default, Clone)]
struct Node {
    literal: HashMap<String, usize>,
    star: Option<usize>,
    /// The node after a `#`; the words the `#` takes are matched by staying inside it.
    hash: Option<usize>,
    routes: Vec<usize>,
}

/// A point of the walk: at trie node `node`, with the type's words from byte `at` on
/// still to match (`at` past the end: none left).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    node: usize,
    at: usize,
    /// `Some(stop)`: inside the `#` that leads to `node`, which may take the word at
    /// `at` and stay, up to byte `stop`, where an earlier entry into it took over.
    in_hash: Option<usize>,
}

/// One walk of the trie for one event type.
///
/// Once inside a `#`, every later word can be taken, so the positions at which a `#`
/// node is entered and walked form one run up to the end of the type. The walk keeps,
/// per `#` node, the lowest position entered so far: a later entry at or after it is
/// already covered, an earlier one walks only up to it. Every other state has a single
/// predecessor, so each state is visited at most once.
struct Walk<'t> {
    trie: &'t TopicTrie,
    event_type: &'t str,
    /// States still to visit.
    stack: Vec<State>,
    /// `#` node -> the lowest byte at which the walk entered it. Without `#` in any
    /// pattern nothing is inserted, so nothing is allocated.
    entered: HashMap<usize, usize>,
}

impl TopicTrie {
    /// Whether no pattern was inserted.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Adds `pattern` for route `route`.
    pub fn insert(&mut self, pattern: &[Word], route: usize) {
        if self.nodes.is_empty() {
            self.nodes.push(Node::default());
        }
        let mut at = 0;
        for word in pattern {
            let next = self.nodes.len();
            let node = &mut self.nodes[at];
            let slot = match word {
                Word::Literal(w) => node.literal.entry(w.clone()).or_insert(next),
                Word::Star => node.star.get_or_insert(next),
                Word::Hash => node.hash.get_or_insert(next),
            };
            at = *slot;
            if at == next {
                self.nodes.push(Node::default());
            }
        }
        self.nodes[at].routes.push(route);
    }

    /// Appends to `out` the routes whose pattern matches `event_type` (unsorted, each
    /// terminal node's routes once; the caller sorts and dedupes).
    ///
    /// Cost: at most 2 x (trie nodes) x (words of the type) states, each handled in
    /// constant time plus the hashing of one word. Without `#` in any pattern, the walk
    /// allocates only when a node has both a literal and a `*` child that fit (the
    /// stack).
    pub fn collect(&self, event_type: &str, out: &mut Vec<usize>) {
        if self.nodes.is_empty() {
            return;
        }
        let mut walk = Walk {
            trie: self,
            event_type,
            stack: Vec::new(),
            entered: HashMap::new(),
        };
        let mut next = Some(State {
            node: 0,
            at: 0,
            in_hash: None,
        });
        while let Some(state) = next.take().or_else(|| walk.stack.pop()) {
            next = walk.step(state, out);
        }
    }
}

impl Walk<'_> {
    /// Visits `state`: records its routes when it ends the type, and returns one state
    /// to visit next (the others go on the stack), so a walk down a single path never
    /// touches the stack.
    fn step(&mut self, state: State, out: &mut Vec<usize>) -> Option<State> {
        let mut follow = Follow::default();
        let trie = self.trie;
        let node = &trie.nodes[state.node];
        let word = word_at(self.event_type, state.at);
        if let Some(stop) = state.in_hash {
            // Leave the `#` here, or let it take one more word.
            follow.push(State {
                in_hash: None,
                ..state
            });
            if let Some((_, after)) = word
                && after < stop
            {
                follow.push(State { at: after, ..state });
            }
            return follow.finish(&mut self.stack);
        }
        if let Some(hash) = node.hash {
            self.enter_hash(hash, state.at, &mut follow);
        }
        match word {
            None => out.extend_from_slice(&node.routes),
            Some((word, after)) => {
                if let Some(&child) = node.literal.get(word) {
                    follow.push(State {
                        node: child,
                        at: after,
                        in_hash: None,
                    });
                }
                if let Some(star) = node.star {
                    follow.push(State {
                        node: star,
                        at: after,
                        in_hash: None,
                    });
                }
            }
        }
        follow.finish(&mut self.stack)
    }

    /// Enters the `#` before `node` at byte `at`, unless an entry at or before `at`
    /// already covers it.
    fn enter_hash(&mut self, node: usize, at: usize, follow: &mut Follow) {
        let stop = self.entered.get(&node).copied().unwrap_or(usize::MAX);
        if at < stop {
            self.entered.insert(node, at);
            follow.push(State {
                node,
                at,
                in_hash: Some(stop),
            });
        }
    }
}

/// The word of `event_type` starting at byte `at` and where the next one starts;
/// `None` when no word is left.
fn word_at(event_type: &str, at: usize) -> Option<(&str, usize)> {
    let rest = event_type.get(at..)?;
    Some(match rest.find('.') {
        Some(dot) => (&rest[..dot], at + dot + 1),
        None => (rest, event_type.len() + 1),
    })
}

/// The states that follow one state: the first is returned, the rest are stacked.
#[derive(Default)]
struct Follow {
    first: Option<State>,
    more: [Option<State>; 2],
}

impl Follow {
    fn push(&mut self, state: State) {
        let slot = if self.first.is_none() {
            &mut self.first
        } else if self.more[0].is_none() {
            &mut self.more[0]
        } else {
            &mut self.more[1]
        };
        *slot = Some(state);
    }

    fn finish(self, stack: &mut Vec<State>) -> Option<State> {
        stack.extend(self.more.into_iter().flatten());
        self.first
    }
}

#[cfg(test)]
mod tests;
