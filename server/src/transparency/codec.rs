//! The server's encoding of akd's tree nodes at rest (`kt_nodes`): a
//! fixed layout, versioned, and ours, so that the stored tree does not depend on
//! how akd's structs serialise.
//!
//! ```text
//! record  = 0x01 ‖ node(latest) ‖ 0x00 | (0x01 ‖ node(previous))
//! node    = label ‖ last_epoch u64 ‖ min_descendant_epoch u64 ‖ parent label
//!         ‖ type u8 (1 leaf, 2 root, 3 interior) ‖ child ‖ child ‖ hash [32]
//! label   = length in bits u32 ‖ value [32]         (all integers big-endian)
//! child   = 0x00 | (0x01 ‖ label)
//! ```

use akd::tree_node::{TreeNode, TreeNodeType, TreeNodeWithPreviousValue};
use akd::{AzksValue, NodeLabel};

/// The record format's version byte.
const VERSION: u8 = 1;
/// Bytes of a label.
const LABEL_LEN: usize = 4 + 32;
/// Bytes of one node.
const NODE_LEN: usize = LABEL_LEN + 8 + 8 + LABEL_LEN + 1 + 2 * (1 + LABEL_LEN) + 32;

/// A stored node that does not decode.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("stored transparency node: {0}")]
pub struct CodecError(&'static str);

/// The bytes of a node record.
pub fn encode(record: &TreeNodeWithPreviousValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + 2 * NODE_LEN);
    out.push(VERSION);
    put_node(&mut out, &record.latest_node);
    match &record.previous_node {
        None => out.push(0),
        Some(previous) => {
            out.push(1);
            put_node(&mut out, previous);
        }
    }
    out
}

/// The node record of `bytes`; it must be all of them.
pub fn decode(bytes: &[u8]) -> Result<TreeNodeWithPreviousValue, CodecError> {
    let mut reader = Reader(bytes);
    if reader.u8()? != VERSION {
        return Err(CodecError("unknown version"));
    }
    let latest_node = reader.node()?;
    let previous_node = match reader.u8()? {
        0 => None,
        1 => Some(reader.node()?),
        _ => return Err(CodecError("bad previous-node flag")),
    };
    if !reader.0.is_empty() {
        return Err(CodecError("trailing bytes"));
    }
    if previous_node
        .as_ref()
        .is_some_and(|p| p.label != latest_node.label)
    {
        return Err(CodecError("previous node of another label"));
    }
    Ok(TreeNodeWithPreviousValue {
        label: latest_node.label,
        latest_node,
        previous_node,
    })
}

/// The bytes of a label: its length in bits and its value.
pub fn label_bytes(label: &NodeLabel) -> [u8; LABEL_LEN] {
    let mut out = [0; LABEL_LEN];
    out[..4].copy_from_slice(&label.label_len.to_be_bytes());
    out[4..].copy_from_slice(&label.label_val);
    out
}

/// The label of `bytes`.
pub fn label_from_bytes(bytes: &[u8]) -> Result<NodeLabel, CodecError> {
    let mut reader = Reader(bytes);
    let label = reader.label()?;
    if !reader.0.is_empty() {
        return Err(CodecError("trailing bytes after a label"));
    }
    Ok(label)
}

fn put_node(out: &mut Vec<u8>, node: &TreeNode) {
    out.extend_from_slice(&label_bytes(&node.label));
    out.extend_from_slice(&node.last_epoch.to_be_bytes());
    out.extend_from_slice(&node.min_descendant_epoch.to_be_bytes());
    out.extend_from_slice(&label_bytes(&node.parent));
    out.push(node.node_type as u8);
    for child in [&node.left_child, &node.right_child] {
        match child {
            None => out.push(0),
            Some(label) => {
                out.push(1);
                out.extend_from_slice(&label_bytes(label));
            }
        }
    }
    out.extend_from_slice(&node.hash.0);
}

/// Reads fields off the front of a slice.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(CodecError("truncated"))?;
        self.0 = rest;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take::<1>()?[0])
    }

    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_be_bytes(self.take()?))
    }

    fn label(&mut self) -> Result<NodeLabel, CodecError> {
        let len = u32::from_be_bytes(self.take()?);
        if len > 256 {
            return Err(CodecError("label longer than 256 bits"));
        }
        Ok(NodeLabel::new(self.take()?, len))
    }

    fn child(&mut self) -> Result<Option<NodeLabel>, CodecError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.label()?)),
            _ => Err(CodecError("bad child flag")),
        }
    }

    fn node(&mut self) -> Result<TreeNode, CodecError> {
        let label = self.label()?;
        let last_epoch = self.u64()?;
        let min_descendant_epoch = self.u64()?;
        let parent = self.label()?;
        let node_type = match self.u8()? {
            1 => TreeNodeType::Leaf,
            2 => TreeNodeType::Root,
            3 => TreeNodeType::Interior,
            _ => return Err(CodecError("unknown node type")),
        };
        let left_child = self.child()?;
        let right_child = self.child()?;
        let hash = AzksValue(self.take()?);
        Ok(TreeNode {
            label,
            last_epoch,
            min_descendant_epoch,
            parent,
            node_type,
            left_child,
            right_child,
            hash,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_label() -> impl Strategy<Value = NodeLabel> {
        (any::<[u8; 32]>(), 0u32..=256).prop_map(|(value, len)| NodeLabel::new(value, len))
    }

    fn arb_node(label: NodeLabel) -> impl Strategy<Value = TreeNode> {
        (
            any::<u64>(),
            any::<u64>(),
            arb_label(),
            1u8..=3,
            proptest::option::of(arb_label()),
            proptest::option::of(arb_label()),
            any::<[u8; 32]>(),
        )
            .prop_map(
                move |(last, min, parent, kind, left, right, hash)| TreeNode {
                    label,
                    last_epoch: last,
                    min_descendant_epoch: min,
                    parent,
                    node_type: match kind {
                        1 => TreeNodeType::Leaf,
                        2 => TreeNodeType::Root,
                        _ => TreeNodeType::Interior,
                    },
                    left_child: left,
                    right_child: right,
                    hash: AzksValue(hash),
                },
            )
    }

    fn arb_record() -> impl Strategy<Value = TreeNodeWithPreviousValue> {
        arb_label().prop_flat_map(|label| {
            (arb_node(label), proptest::option::of(arb_node(label))).prop_map(
                move |(latest_node, previous_node)| TreeNodeWithPreviousValue {
                    label,
                    latest_node,
                    previous_node,
                },
            )
        })
    }

    proptest! {
        #[test]
        fn every_record_round_trips(record in arb_record()) {
            let bytes = encode(&record);
            prop_assert_eq!(decode(&bytes), Ok(record));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..500)) {
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn a_record_has_its_layout_and_nothing_else() {
        let label = NodeLabel::new([7; 32], 9);
        let node = TreeNode {
            label,
            last_epoch: 1,
            min_descendant_epoch: 1,
            parent: NodeLabel::new([0; 32], 0),
            node_type: TreeNodeType::Leaf,
            left_child: None,
            right_child: None,
            hash: AzksValue([3; 32]),
        };
        let record = TreeNodeWithPreviousValue {
            label,
            latest_node: node.clone(),
            previous_node: Some(node),
        };
        let bytes = encode(&record);
        assert_eq!(bytes.len(), 2 + 2 * NODE_LEN - 2 * 2 * LABEL_LEN);
        let mut truncated = bytes.clone();
        truncated.pop();
        assert_eq!(decode(&truncated), Err(CodecError("truncated")));
        let mut longer = bytes;
        longer.push(0);
        assert_eq!(decode(&longer), Err(CodecError("trailing bytes")));
    }
}
