"""The vocabulary every process speaks: ids and signatures, typed integers,
genesis, domain errors, the wire codec, and the generated protobuf code (v1/)."""
