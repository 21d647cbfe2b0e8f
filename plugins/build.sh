#!/usr/bin/env bash
# Builds every plugin in this folder to plugins/dist/NAME.wasm. With an installed
# wasm32-unknown-unknown target (rustup) it is a plain cargo build; without one, it uses
# Debian's Rust toolchain and builds std for wasm from source, installing the packages
# (rustc-web, rust-web-src, lld-22) when they are missing.
set -euo pipefail
cd "$(dirname "$0")"
target=wasm32-unknown-unknown

if rustc --print target-libdir --target "$target" 2>/dev/null | xargs -r test -d \
   && ls "$(rustc --print target-libdir --target "$target")"/libstd-* >/dev/null 2>&1; then
  cargo build --locked --release --target "$target"
else
  if [[ ! -x /usr/bin/rustc || ! -d /usr/lib/rustlib/src || ! -x /usr/lib/llvm-22/bin/wasm-ld ]]; then
    echo "plugins/build.sh: installing Debian's Rust toolchain for $target" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web rust-web-src lld-22
  fi
  # The linker comes through the environment so that .cargo/config.toml's rustflags still apply.
  RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=/usr/lib/llvm-22/bin/wasm-ld \
    cargo build --locked --release -Zbuild-std=std,panic_abort --target "$target"
fi

mkdir -p dist
for lib in target/$target/release/*.wasm; do
  cp "$lib" "dist/$(basename "$lib" | tr '_' '-')"
done
# Plugins written in WebAssembly text need no build: the host compiles them.
cp examples-wat/*/*.wat dist/
ls -l dist/
