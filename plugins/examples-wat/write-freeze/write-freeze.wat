;; write-freeze: refuses every write it is configured for with 403, for maintenance
;; windows or read-only tenants. Written in WebAssembly text, with no toolchain at all,
;; to show that the plugin ABI (docs/plugins.md) does not depend on Rust: it exports the
;; marker, its memory, scim_alloc and scim_handle, and logs through the host's one import.
(module
  (import "scimgate" "log" (func $log (param i32 i32)))
  (memory (export "memory") 2)
  (global (export "scim_abi_v1") i32 (i32.const 1))
  ;; The input goes above the answer, at 4096; it is not read: the decision never depends
  ;; on it. Memory grows to hold it, however large (a group PATCH carries the whole member
  ;; list): a plugin that traps on a large input fails the write, or with
  ;; on_failure = "open" lets it through, and a freeze must never do that.
  (func (export "scim_alloc") (param $len i32) (result i32)
    (local $pages i32)
    ;; pages needed for 4096 + len bytes, rounded up
    (local.set $pages
      (i32.div_u
        (i32.add (i32.add (local.get $len) (i32.const 4096)) (i32.const 65535))
        (i32.const 65536)))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then unreachable))))
    (i32.const 4096))
  (data (i32.const 64) "write refused: frozen")
  (data (i32.const 1024) "{\"decision\":\"reject\",\"status\":403,\"detail\":\"writes are frozen for maintenance; retry later\"}")
  (func (export "scim_handle") (param i32 i32) (result i64)
    (call $log (i32.const 64) (i32.const 21))
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const 92))))
