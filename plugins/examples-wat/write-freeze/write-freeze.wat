;; write-freeze: refuses every write it is configured for with 403, for maintenance
;; windows or read-only tenants. Written in WebAssembly text, with no toolchain at all,
;; to show that the plugin ABI (docs/plugins.md) does not depend on Rust: it exports the
;; marker, its memory, scim_alloc and scim_handle, and logs through the host's one import.
(module
  (import "scimgate" "log" (func $log (param i32 i32)))
  (memory (export "memory") 2)
  (global (export "scim_abi_v1") i32 (i32.const 1))
  ;; The input goes above the answer; it is not read: the decision never depends on it.
  (func (export "scim_alloc") (param i32) (result i32) (i32.const 4096))
  (data (i32.const 64) "write refused: frozen")
  (data (i32.const 1024) "{\"decision\":\"reject\",\"status\":403,\"detail\":\"writes are frozen for maintenance; retry later\"}")
  (func (export "scim_handle") (param i32 i32) (result i64)
    (call $log (i32.const 64) (i32.const 21))
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const 92))))
