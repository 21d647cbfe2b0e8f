//! `scimgate plugin check|run`: try a WebAssembly plugin without a server.

use std::io::Read;
use std::path::PathBuf;

use crate::{CliResult, PluginCommand};

pub fn plugin(cmd: PluginCommand) -> CliResult {
    use scimgate_plugins::{ABI_VERSION, CallInput, PluginHost, PluginSpec};
    let spec = |file: PathBuf, config: serde_json::Value| PluginSpec {
        name: file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        file,
        hooks: vec![],
        resource_types: vec![],
        tenants: None,
        config,
        limits: Default::default(),
        on_failure: Default::default(),
        sees_password: false,
        receivers: None,
    };
    match cmd {
        PluginCommand::Check { file } => {
            PluginHost::load(vec![spec(file.clone(), serde_json::Value::Null)])?;
            say!("{}: ok, plugin ABI version {ABI_VERSION}", file.display());
            Ok(())
        }
        PluginCommand::Run {
            file,
            hook,
            config,
            resource_type,
            tenant,
        } => {
            if scimgate_plugins::Hook::from_name(&hook).is_none() {
                return Err(format!(
                    "--hook must be create, replace, patch or delete, not '{hook}'"
                )
                .into());
            }
            let config: serde_json::Value =
                serde_json::from_str(&config).map_err(|e| format!("--config is not JSON: {e}"))?;
            let mut stdin = String::new();
            std::io::stdin().read_to_string(&mut stdin)?;
            let resource: serde_json::Value =
                serde_json::from_str(&stdin).map_err(|e| format!("stdin is not JSON: {e}"))?;
            let host = PluginHost::load(vec![spec(file, config.clone())])?;
            let input = CallInput {
                abi: ABI_VERSION,
                hook: &hook,
                resource_type: &resource_type,
                tenant: &tenant,
                resource: &resource,
                before: None,
                operations: None,
                request_id: None,
                receiver: None,
                config: &config,
            };
            let started = std::time::Instant::now();
            let result = host.call(0, &input);
            let took = started.elapsed();
            match result {
                Ok(decision) => {
                    say!("{}", decision.to_json());
                    eprintln!("took {} µs", took.as_micros());
                    Ok(())
                }
                Err(failure) => Err(format!(
                    "the plugin failed after {} µs: {failure}",
                    took.as_micros()
                )
                .into()),
            }
        }
    }
}
