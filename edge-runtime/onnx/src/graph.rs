//! A small builder over the ONNX messages: unique value names, constants and nodes.
//!
//! Every value the exporter makes has one writer, so the graph is in SSA form and in
//! topological order as written. Constants are initializers with `raw_data` (little-endian,
//! which ONNX prescribes): the most compact form, and the one every reader supports.

use std::collections::{HashMap, HashSet};

use crate::proto::{
    AttributeProto, NodeProto, TensorProto, attribute_proto::AttributeType, tensor_proto::DataType,
};

/// The graph under construction.
#[derive(Debug, Default)]
pub(crate) struct Graph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    taken: HashSet<String>,
    /// Constants recur (axes, shapes and slice bounds in every layer, the masks of
    /// alternating couplings): one initializer each keeps the file and the readers' work
    /// small. Keyed by element type, shape and raw bytes.
    constants: HashMap<(i32, Vec<i64>, Vec<u8>), String>,
}

impl Graph {
    /// Claims `name` for a graph input or output, so that no node's value takes it.
    pub fn reserve(&mut self, name: &str) {
        self.taken.insert(name.to_owned());
    }

    /// A fresh value name from `hint`, for a value a later [`Graph::op_into`] writes.
    pub fn claim(&mut self, hint: &str) -> String {
        self.fresh(hint)
    }

    /// `hint`, or `hint` with the first free numeric suffix.
    fn fresh(&mut self, hint: &str) -> String {
        let mut name = hint.to_owned();
        let mut suffix = 1;
        while self.taken.contains(&name) {
            suffix += 1;
            name = format!("{hint}_{suffix}");
        }
        self.taken.insert(name.clone());
        name
    }

    /// Adds a node of `op_type` and returns its (single) output's name, derived from `hint`.
    pub fn op(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        attributes: Vec<AttributeProto>,
        hint: &str,
    ) -> String {
        let output = self.fresh(hint);
        self.push_node(op_type, inputs, attributes, &output);
        output
    }

    /// Adds a node writing the reserved name `output` (a graph output).
    pub fn op_into(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        attributes: Vec<AttributeProto>,
        output: &str,
    ) {
        self.push_node(op_type, inputs, attributes, output);
    }

    fn push_node(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        attributes: Vec<AttributeProto>,
        output: &str,
    ) {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|&input| input.to_owned()).collect(),
            output: vec![output.to_owned()],
            name: Some(output.to_owned()),
            op_type: Some(op_type.to_owned()),
            attribute: attributes,
            ..Default::default()
        });
    }

    /// An f32 initializer of shape `dims`, shared with every equal one.
    pub fn f32_constant(&mut self, hint: &str, dims: &[i64], values: &[f32]) -> String {
        debug_assert_eq!(element_count(dims), values.len(), "{hint}");
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(hint, dims, DataType::Float, raw)
    }

    /// An f32 initializer of shape `[1; rank]` (broadcasts against anything of that rank;
    /// TensorRT's parser wants operands of equal rank).
    pub fn f32_scalar(&mut self, hint: &str, rank: usize, value: f32) -> String {
        self.f32_constant(hint, &vec![1; rank], &[value])
    }

    /// An int8 initializer of shape `dims` (values as stored, one byte each), shared with
    /// every equal one.
    pub fn i8_constant(&mut self, hint: &str, dims: &[i64], values: &[u8]) -> String {
        debug_assert_eq!(element_count(dims), values.len(), "{hint}");
        self.initializer(hint, dims, DataType::Int8, values.to_vec())
    }

    /// An int64 initializer of shape `dims`, shared with every equal one.
    pub fn i64_constant(&mut self, hint: &str, dims: &[i64], values: &[i64]) -> String {
        debug_assert_eq!(element_count(dims), values.len(), "{hint}");
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(hint, dims, DataType::Int64, raw)
    }

    /// A 1-D int64 initializer.
    pub fn i64_list(&mut self, hint: &str, values: &[i64]) -> String {
        self.i64_constant(hint, &[values.len() as i64], values)
    }

    fn initializer(
        &mut self,
        hint: &str,
        dims: &[i64],
        data_type: DataType,
        raw: Vec<u8>,
    ) -> String {
        let key = (data_type as i32, dims.to_vec(), raw);
        if let Some(name) = self.constants.get(&key) {
            return name.clone();
        }
        let raw = key.2.clone();
        let name = self.fresh(hint);
        self.constants.insert(key, name.clone());
        self.initializers.push(TensorProto {
            dims: dims.to_vec(),
            data_type: Some(data_type as i32),
            name: Some(name.clone()),
            raw_data: Some(raw),
            ..Default::default()
        });
        name
    }

    /// The nodes and initializers, in the order written.
    pub fn into_parts(self) -> (Vec<NodeProto>, Vec<TensorProto>) {
        (self.nodes, self.initializers)
    }
}

/// Helpers on activations, which are `[N, C, H, W]` throughout.
impl Graph {
    /// Channels `start..end` of `x`.
    pub fn slice_channels(&mut self, x: &str, start: u32, end: u32, hint: &str) -> String {
        let starts = self.i64_list("start", &[i64::from(start)]);
        let ends = self.i64_list("end", &[i64::from(end)]);
        let axes = self.i64_list("channel_axis", &[1]);
        self.op("Slice", &[x, &starts, &ends, &axes], vec![], hint)
    }

    /// The sum of each frame's elements: `[N, C, H, W]` -> `[N]`.
    pub fn sum_per_frame(&mut self, x: &str, hint: &str) -> String {
        // Opset 13 moved ReduceSum's axes from an attribute to an input.
        let axes = self.i64_list("frame_axes", &[1, 2, 3]);
        self.op("ReduceSum", &[x, &axes], vec![int("keepdims", 0)], hint)
    }

    /// The sum of squares of each frame's elements: `[N, C, H, W]` -> `[N]`.
    pub fn sum_squares_per_frame(&mut self, x: &str, hint: &str) -> String {
        // ReduceSumSquare keeps its axes attribute until opset 18.
        let attributes = vec![ints("axes", &[1, 2, 3]), int("keepdims", 0)];
        self.op("ReduceSumSquare", &[x], attributes, hint)
    }

    /// `x` reshaped to `[N, dims...]` (ONNX's 0 copies the batch dimension).
    pub fn reshape_per_frame(&mut self, x: &str, dims: &[u32], hint: &str) -> String {
        let shape: Vec<i64> = core::iter::once(0)
            .chain(dims.iter().map(|&d| i64::from(d)))
            .collect();
        let shape = self.i64_list("shape", &shape);
        self.op("Reshape", &[x, &shape], vec![], hint)
    }
}

fn element_count(dims: &[i64]) -> usize {
    dims.iter().map(|&d| d as usize).product()
}

/// An integer attribute.
pub(crate) fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_owned()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(value),
        ..Default::default()
    }
}

/// An integer-list attribute.
pub(crate) fn ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_owned()),
        r#type: Some(AttributeType::Ints as i32),
        ints: values.to_vec(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_get_unique_names_and_never_a_reserved_one() {
        let mut graph = Graph::default();
        graph.reserve("levels");
        let first = graph.op("Relu", &["levels"], vec![], "levels");
        let second = graph.op("Relu", &[&first], vec![], "levels");
        assert_eq!([first.as_str(), second.as_str()], ["levels_2", "levels_3"]);
    }

    #[test]
    fn equal_constants_are_one_initializer() {
        let mut graph = Graph::default();
        let axes = graph.i64_list("axes", &[1, 2, 3]);
        assert_eq!(graph.i64_list("other", &[1, 2, 3]), axes);
        let mask = graph.f32_constant("mask", &[1, 2], &[0.0, 1.0]);
        assert_eq!(graph.f32_constant("again", &[1, 2], &[0.0, 1.0]), mask);
        // The same bytes as another type or shape are another constant.
        assert_ne!(graph.f32_constant("flat", &[2], &[0.0, 1.0]), mask);
        assert_ne!(graph.i64_list("one_axis", &[1]), axes);
        let (_, initializers) = graph.into_parts();
        assert_eq!(initializers.len(), 4);
    }
}
