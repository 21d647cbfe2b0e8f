-- Comparison keys became Unicode canonical caseless matches (NFC after folding): the
-- searchable values and the name keys are computed again, in Rust, by the hook.
DELETE FROM attr_index;
