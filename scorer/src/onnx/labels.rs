//! Class labels stored in an ONNX classifier's graph.
//!
//! ONNX Runtime's API shows a model's inputs and outputs but not its nodes, and the class labels
//! that skl2onnx writes live on nodes: `classlabels_ints` (LinearClassifier, SVMClassifier),
//! `classlabels_int64s` (TreeEnsembleClassifier, ZipMap) or `classlabels_strings`, in probability
//! column order. Rather than depend on a protobuf library for three fields, this reads just
//! `ModelProto.graph (7) → GraphProto.node (1) → NodeProto.attribute (5) → AttributeProto.name
//! (1), ints (8), strings (9)` from the model bytes and skips everything else. A malformed file
//! gives no labels, never an error: ONNX Runtime has already accepted the model by then.

/// Class labels of a classifier, in probability column order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ClassLabels {
    /// Integer labels (the `label` output is int64).
    Ints(Vec<i64>),
    /// String labels (the `label` output is a string tensor).
    Strings(Vec<String>),
}

impl ClassLabels {
    pub(crate) fn len(&self) -> usize {
        match self {
            ClassLabels::Ints(v) => v.len(),
            ClassLabels::Strings(v) => v.len(),
        }
    }

    /// The labels as class names.
    pub(crate) fn names(&self) -> Vec<String> {
        match self {
            ClassLabels::Ints(v) => v.iter().map(i64::to_string).collect(),
            ClassLabels::Strings(v) => v.clone(),
        }
    }
}

/// Every class label list in the main graph, in node order.
pub(crate) fn class_labels(model: &[u8]) -> Vec<ClassLabels> {
    let mut found = Vec::new();
    for graph in Fields(model).filter_map(|f| f.bytes(7)) {
        for node in Fields(graph).filter_map(|f| f.bytes(1)) {
            for attribute in Fields(node).filter_map(|f| f.bytes(5)) {
                if let Some(labels) = attribute_labels(attribute) {
                    found.push(labels);
                }
            }
        }
    }
    found
}

fn attribute_labels(attribute: &[u8]) -> Option<ClassLabels> {
    let name = Fields(attribute).find_map(|f| f.bytes(1))?;
    match name {
        b"classlabels_ints" | b"classlabels_int64s" => {
            let mut ints = Vec::new();
            for field in Fields(attribute) {
                match field {
                    Field::Varint(8, v) => ints.push(v as i64),
                    Field::Bytes(8, packed) => {
                        let mut reader = Reader(packed);
                        while !reader.0.is_empty() {
                            ints.push(reader.varint()? as i64);
                        }
                    }
                    _ => {}
                }
            }
            Some(ClassLabels::Ints(ints))
        }
        b"classlabels_strings" => Fields(attribute)
            .filter_map(|f| f.bytes(9))
            .map(|s| String::from_utf8(s.to_vec()).ok())
            .collect::<Option<Vec<_>>>()
            .map(ClassLabels::Strings),
        _ => None,
    }
}

/// One protobuf field: its number and value (fixed-width values are skipped).
#[derive(Debug, PartialEq)]
enum Field<'a> {
    Varint(u64, u64),
    Bytes(u64, &'a [u8]),
    Fixed,
}

impl<'a> Field<'a> {
    fn bytes(self, number: u64) -> Option<&'a [u8]> {
        match self {
            Field::Bytes(n, b) if n == number => Some(b),
            _ => None,
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for (i, &byte) in self.0.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.0 = &self.0[i + 1..];
                return Some(value);
            }
        }
        None
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
}

/// The fields of one message; stops at the first malformed byte.
struct Fields<'a>(&'a [u8]);

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;

    fn next(&mut self) -> Option<Field<'a>> {
        let mut reader = Reader(self.0);
        let field = (|| {
            let key = reader.varint()?;
            let number = key >> 3;
            match key & 7 {
                0 => Some(Field::Varint(number, reader.varint()?)),
                1 => reader.take(8).map(|_| Field::Fixed),
                2 => {
                    let len = usize::try_from(reader.varint()?).ok()?;
                    reader.take(len).map(|b| Field::Bytes(number, b))
                }
                5 => reader.take(4).map(|_| Field::Fixed),
                // Groups (3, 4) are not used by ONNX; anything else is not protobuf.
                _ => None,
            }
        })();
        self.0 = if field.is_some() { reader.0 } else { &[] };
        field
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn bytes_field(number: u64, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        varint(number << 3 | 2, &mut out);
        varint(body.len() as u64, &mut out);
        out.extend_from_slice(body);
        out
    }

    fn model(attributes: &[Vec<u8>]) -> Vec<u8> {
        let mut node = bytes_field(4, b"LinearClassifier");
        for a in attributes {
            node.extend(bytes_field(5, a));
        }
        let mut graph = bytes_field(2, b"graph name");
        graph.extend(bytes_field(1, &node));
        let mut model = Vec::new();
        varint(1 << 3, &mut model); // ir_version = 8
        varint(8, &mut model);
        model.extend(bytes_field(7, &graph));
        model
    }

    #[test]
    fn reads_unpacked_and_packed_ints_and_strings() {
        let mut unpacked = bytes_field(1, b"classlabels_ints");
        for v in [0u64, 1, u64::MAX] {
            varint(8 << 3, &mut unpacked);
            varint(v, &mut unpacked);
        }
        let mut packed_body = Vec::new();
        for v in [3u64, 7] {
            varint(v, &mut packed_body);
        }
        let mut packed = bytes_field(1, b"classlabels_int64s");
        packed.extend(bytes_field(8, &packed_body));
        let mut strings = bytes_field(1, b"classlabels_strings");
        strings.extend(bytes_field(9, b"H"));
        strings.extend(bytes_field(9, b"L"));
        let other = bytes_field(1, b"post_transform");
        let labels = class_labels(&model(&[unpacked, packed, other, strings]));
        assert_eq!(
            labels,
            vec![
                ClassLabels::Ints(vec![0, 1, -1]),
                ClassLabels::Ints(vec![3, 7]),
                ClassLabels::Strings(vec!["H".into(), "L".into()]),
            ]
        );
    }

    #[test]
    fn garbage_gives_no_labels() {
        assert!(class_labels(b"not a model at all").is_empty());
        assert!(class_labels(&[0xff; 12]).is_empty());
        assert!(class_labels(&[]).is_empty());
        let mut truncated = model(&[bytes_field(1, b"classlabels_ints")]);
        truncated.truncate(truncated.len() - 3);
        assert!(class_labels(&truncated).is_empty());
    }
}
