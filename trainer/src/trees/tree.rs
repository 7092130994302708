//! One fitted tree: an array of nodes, as in scikit-learn's `Tree`.

use serde::{Deserialize, Serialize};

/// A node of a fitted tree.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct Node {
    /// The split feature, or [`Node::LEAF`].
    pub(crate) feature: u32,
    /// Rows with `x[feature] <= threshold` go left, the others right.
    pub(crate) threshold: f64,
    pub(crate) left: u32,
    pub(crate) right: u32,
    /// Sum of the sample weights that reached the node in training.
    pub(crate) weight: f64,
    /// The node's impurity under the training criterion.
    pub(crate) impurity: f64,
}

impl Node {
    /// `feature` of a leaf.
    pub(crate) const LEAF: u32 = u32::MAX;

    pub(crate) fn is_leaf(&self) -> bool {
        self.feature == Self::LEAF
    }
}

/// A fitted binary tree. Node 0 is the root; each node owns `n_outputs` values (class
/// probabilities, or one regression value), stored for internal nodes too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Tree {
    pub(crate) n_features: usize,
    pub(crate) n_outputs: usize,
    pub(crate) nodes: Vec<Node>,
    pub(crate) values: Vec<f64>,
}

impl Tree {
    pub(crate) fn new(n_features: usize, n_outputs: usize) -> Self {
        Self {
            n_features,
            n_outputs,
            nodes: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Appends a leaf; returns its index. `value` has `n_outputs` entries.
    pub(crate) fn push_leaf(&mut self, weight: f64, impurity: f64, value: &[f64]) -> usize {
        debug_assert_eq!(value.len(), self.n_outputs);
        self.nodes.push(Node {
            feature: Node::LEAF,
            threshold: 0.0,
            left: 0,
            right: 0,
            weight,
            impurity,
        });
        self.values.extend_from_slice(value);
        self.nodes.len() - 1
    }

    /// Turns leaf `node` into a split; its children are linked with [`Tree::link`].
    pub(crate) fn set_split(&mut self, node: usize, feature: usize, threshold: f64) {
        self.nodes[node].feature = feature as u32;
        self.nodes[node].threshold = threshold;
    }

    pub(crate) fn link(&mut self, parent: usize, is_left: bool, child: usize) {
        if is_left {
            self.nodes[parent].left = child as u32;
        } else {
            self.nodes[parent].right = child as u32;
        }
    }

    /// The leaf that `row` falls into.
    #[inline]
    pub(crate) fn leaf(&self, row: &[f64]) -> usize {
        let mut i = 0;
        loop {
            let node = &self.nodes[i];
            if node.is_leaf() {
                return i;
            }
            i = if row[node.feature as usize] <= node.threshold {
                node.left as usize
            } else {
                node.right as usize
            };
        }
    }

    /// The values of `node`.
    #[inline]
    pub(crate) fn value(&self, node: usize) -> &[f64] {
        &self.values[node * self.n_outputs..(node + 1) * self.n_outputs]
    }

    /// The values of the leaf that `row` falls into.
    #[inline]
    pub(crate) fn predict_row(&self, row: &[f64]) -> &[f64] {
        self.value(self.leaf(row))
    }

    /// Overwrites a leaf's single value (gradient boosting's line search).
    pub(crate) fn set_value(&mut self, node: usize, value: f64) {
        debug_assert_eq!(self.n_outputs, 1);
        self.values[node] = value;
    }

    pub(crate) fn n_leaves(&self) -> usize {
        self.nodes.iter().filter(|n| n.is_leaf()).count()
    }

    /// Depth of the deepest leaf (a lone root has depth 0).
    pub(crate) fn depth(&self) -> usize {
        let mut deepest = 0;
        let mut stack = vec![(0usize, 0usize)];
        while let Some((i, depth)) = stack.pop() {
            let node = &self.nodes[i];
            if node.is_leaf() {
                deepest = deepest.max(depth);
            } else {
                stack.push((node.left as usize, depth + 1));
                stack.push((node.right as usize, depth + 1));
            }
        }
        deepest
    }

    /// Total weighted impurity decrease per feature, divided by the root's weight
    /// (scikit-learn's `compute_feature_importances(normalize=False)`).
    pub(crate) fn raw_importances(&self) -> Vec<f64> {
        let mut importances = vec![0.0; self.n_features];
        for node in self.nodes.iter().filter(|n| !n.is_leaf()) {
            let left = &self.nodes[node.left as usize];
            let right = &self.nodes[node.right as usize];
            importances[node.feature as usize] += node.weight * node.impurity
                - left.weight * left.impurity
                - right.weight * right.impurity;
        }
        let root_weight = self.nodes[0].weight;
        importances.iter_mut().for_each(|v| *v /= root_weight);
        importances
    }
}

/// Scales `importances` to sum to one (left as is when all are zero, as scikit-learn does).
pub(crate) fn normalized(mut importances: Vec<f64>) -> Vec<f64> {
    let total: f64 = importances.iter().sum();
    if total > 0.0 {
        importances.iter_mut().for_each(|v| *v /= total);
    }
    importances
}
