//!
//! Every Rust example in these pages is compiled and run by `cargo test --doc -p stratacache
//! --all-features`. On GitHub, start from `docs/guide/README.md`. The links between pages
//! point at the `.md` files and work on GitHub; in this rendering, use the modules below.

#[doc = include_str!("../guide/README.md")]
pub mod index {}

#[doc = include_str!("../guide/getting-started.md")]
pub mod getting_started {}

#[doc = include_str!("../guide/backends.md")]
pub mod backends {}

#[doc = include_str!("../guide/serializers.md")]
pub mod serializers {}

#[doc = include_str!("../guide/plugins.md")]
pub mod plugins {}

#[doc = include_str!("../guide/layers.md")]
pub mod layers {}

#[doc = include_str!("../guide/tags.md")]
pub mod tags {}

#[cfg(all(
    feature = "tiered",
    feature = "redis",
    feature = "memcached",
    feature = "memory"
))]
#[doc = include_str!("../guide/tiered.md")]
pub mod tiered {}

#[cfg(feature = "memory")]
#[doc = include_str!("../guide/performance.md")]
pub mod performance {}

#[doc = include_str!("../guide/locks.md")]
pub mod locks {}

#[doc = include_str!("../guide/resilience.md")]
pub mod resilience {}

#[doc = include_str!("../guide/configuration.md")]
pub mod configuration {}

#[doc = include_str!("../guide/environments.md")]
pub mod environments {}

#[doc = include_str!("../guide/migrating-from-aiocache.md")]
pub mod migrating_from_aiocache {}

#[cfg(feature = "macros")]
#[doc = include_str!("../guide/decorators.md")]
pub mod decorators {}

/// The guide states facts the code decides: scheme lists, parameter names, serializer names,
/// duration units, metric names, example files. These tests read the pages and compare, so a
/// change on either side that leaves the other behind fails here.
#[cfg(test)]
mod drift {
    use std::collections::BTreeSet;

    const CONFIGURATION: &str = include_str!("../guide/configuration.md");
    const PLUGINS: &str = include_str!("../guide/plugins.md");
    const ENVIRONMENTS: &str = include_str!("../guide/environments.md");
    const GETTING_STARTED: &str = include_str!("../guide/getting-started.md");
    const UMBRELLA_README: &str = include_str!("../README.md");
    const ROOT_README: &str = include_str!("../../../README.md");

    /// The lines of the first table after the heading `heading`.
    fn table_after<'a>(page: &'a str, heading: &str) -> Vec<&'a str> {
        let start = page
            .find(heading)
            .unwrap_or_else(|| panic!("no heading {heading:?}"));
        page[start..]
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .skip(2)
            .collect()
    }

    /// The `n`th cell (0-based) of a table row.
    fn cell(row: &str, n: usize) -> &str {
        row.split('|').nth(n + 1).map_or("", str::trim)
    }

    /// The text inside each pair of backticks in `text`.
    fn code_spans(text: &str) -> Vec<&str> {
        text.split('`').skip(1).step_by(2).collect()
    }

    /// The schemes of the "Schemes" table: the `xxx` of every `` `xxx://…` `` in its first
    /// column.
    fn documented_schemes() -> BTreeSet<String> {
        table_after(CONFIGURATION, "### Schemes")
            .into_iter()
            .flat_map(|row| code_spans(cell(row, 0)))
            .filter_map(|span| span.split_once("://").map(|(scheme, _)| scheme.to_owned()))
            .collect()
    }

    #[test]
    fn the_scheme_table_lists_exactly_the_schemes_from_url_accepts() {
        let documented = documented_schemes();
        let accepted: BTreeSet<String> = crate::connectors::all_schemes()
            .map(str::to_owned)
            .collect();
        assert_eq!(
            documented, accepted,
            "docs/guide/configuration.md, ### Schemes"
        );

        // and the parser does recognise each: it parses, or it names the feature to enable
        for scheme in &documented {
            let host = match scheme.as_str() {
                "memory" => "",
                s if s.ends_with("+unix") => "/tmp/redis.sock",
                _ => "127.0.0.1:1",
            };
            let url = format!("{scheme}://{host}");
            if let Err(e) = crate::url::parse(&url) {
                assert!(
                    e.to_string().contains("feature of stratacache"),
                    "{url}: {e}"
                );
            }
        }
        assert!(crate::url::parse("valkey-nope://h").is_err());
    }

    #[test]
    fn the_guide_no_longer_says_from_url_refuses_a_scheme_it_accepts() {
        for scheme in crate::connectors::all_schemes() {
            let claim = format!("does not recognise `{scheme}://`");
            assert!(!CONFIGURATION.contains(&claim), "{claim}");
        }
        assert!(!CONFIGURATION.contains("does not recognise those"));
    }

    #[test]
    fn the_cache_level_parameters_are_the_ones_the_url_parser_takes_out() {
        let documented: BTreeSet<&str> = table_after(CONFIGURATION, "### Cache-level parameters")
            .into_iter()
            .map(|row| cell(row, 0).trim_matches('`'))
            .collect();
        let taken: BTreeSet<&str> = cache_core::url::CACHE_PARAMS.into_iter().collect();
        assert_eq!(documented, taken);
    }

    #[test]
    fn the_serializer_names_are_the_ones_that_parse() {
        let row = table_after(CONFIGURATION, "### Cache-level parameters")
            .into_iter()
            .find(|row| cell(row, 0) == "`serializer`")
            .expect("a serializer row");
        let documented: BTreeSet<&str> = code_spans(cell(row, 1)).into_iter().collect();
        for name in &documented {
            assert!(
                name.parse::<crate::SerializerName>().is_ok(),
                "documented serializer {name:?} does not parse"
            );
        }
        for name in crate::SerializerName::ALL {
            assert!(
                documented.contains(name.as_str()),
                "serializer {name:?} is not documented"
            );
        }
    }

    #[test]
    fn every_documented_duration_and_unit_parses() {
        let row = table_after(CONFIGURATION, "### Cache-level parameters")
            .into_iter()
            .find(|row| cell(row, 0) == "`ttl`")
            .expect("a ttl row");
        let spans = code_spans(cell(row, 1));
        assert!(spans.len() > 10, "{spans:?}");
        for span in spans {
            for spelling in span.split('/') {
                // an example (`1h30m`) or a unit (`min`, `µs`)
                let text = if spelling.starts_with(|c: char| c.is_ascii_digit()) {
                    spelling.to_owned()
                } else {
                    format!("2{spelling}")
                };
                assert!(
                    cache_core::duration::parse(&text).is_ok(),
                    "the guide lists {spelling:?}, which does not parse"
                );
            }
        }
    }

    #[cfg(feature = "metrics")]
    #[test]
    fn the_metric_names_and_the_default_prefix_are_the_plugins() {
        use cache_core::plugins::MetricsPlugin;

        let prefix = MetricsPlugin::DEFAULT_PREFIX;
        assert!(
            PLUGINS.contains(&format!("With the default prefix `{prefix}`")),
            "docs/guide/plugins.md does not name the default prefix {prefix:?}"
        );
        let plugin = MetricsPlugin::new();
        let documented: Vec<&str> = table_after(PLUGINS, "## MetricsPlugin")
            .into_iter()
            .map(|row| cell(row, 0).trim_matches('`'))
            .collect();
        assert_eq!(
            documented,
            [
                plugin.commands_name(),
                plugin.duration_name(),
                plugin.hits_name(),
                plugin.misses_name(),
                plugin.events_name()
            ]
        );
    }

    /// The features of `stratacache`'s manifest, `default` left out.
    fn manifest_features() -> BTreeSet<String> {
        let manifest = include_str!("../Cargo.toml");
        manifest
            .split("[features]")
            .nth(1)
            .and_then(|rest| rest.split("\n[").next())
            .expect("a [features] table")
            .lines()
            .filter_map(|l| l.split_once(" = ").map(|(name, _)| name.trim().to_owned()))
            .filter(|name| name != "default" && !name.starts_with('#'))
            .collect()
    }

    /// The first column of the feature table after `heading` in `page`.
    fn documented_features(page: &str, heading: &str) -> BTreeSet<String> {
        table_after(page, heading)
            .into_iter()
            .map(|row| cell(row, 0).trim_matches('`').to_owned())
            .collect()
    }

    #[test]
    fn every_feature_table_lists_exactly_the_crates_features() {
        let features = manifest_features();
        assert!(
            features.contains("zstd") && features.contains("full"),
            "{features:?}"
        );
        for (page, text, heading) in [
            (
                "docs/guide/getting-started.md",
                GETTING_STARTED,
                "## Add the crate",
            ),
            (
                "crates/stratacache/README.md",
                UMBRELLA_README,
                "## Features",
            ),
            ("README.md", ROOT_README, "| `stratacache` feature |"),
        ] {
            assert_eq!(documented_features(text, heading), features, "{page}");
        }
    }

    /// The plugin configuration shown in the plugins page reads, and every plugin name the
    /// configuration page lists is one `PluginConfig::from_name` knows.
    #[test]
    fn the_documented_plugin_configuration_reads() {
        #[derive(serde::Deserialize)]
        struct Plugins {
            plugins: Vec<crate::PluginConfig>,
        }
        let at = PLUGINS
            .find("## Plugins from configuration")
            .expect("the section");
        let block = PLUGINS[at..]
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("a toml block");
        let parsed: Plugins = toml::from_str(block).expect("the documented TOML reads");
        assert_eq!(parsed.plugins.len(), 4);

        let row = table_after(CONFIGURATION, "### From environment variables")
            .into_iter()
            .find(|row| cell(row, 0) == "`{PREFIX}_PLUGINS`")
            .expect("a PLUGINS row");
        let names = code_spans(cell(row, 1)).concat();
        let names: Vec<&str> = names.split(',').collect();
        assert_eq!(names.len(), 4, "{names:?}");
        for name in names {
            assert!(crate::PluginConfig::from_name(name).is_ok(), "{name}");
        }
    }

    /// The config files shown in the environments page are the example's files.
    #[test]
    fn the_example_config_files_are_shown_as_they_are() {
        for name in ["memory", "redis", "memcached"] {
            let label = format!("`examples/config/{name}.toml`");
            let at = ENVIRONMENTS
                .find(&label)
                .unwrap_or_else(|| panic!("{label} is not shown"));
            let block = ENVIRONMENTS[at..]
                .split("```toml\n")
                .nth(1)
                .and_then(|rest| rest.split("```").next())
                .expect("a toml block");
            let path = format!("{}/examples/config/{name}.toml", env!("CARGO_MANIFEST_DIR"));
            let file = std::fs::read_to_string(&path).unwrap();
            let file: String = file
                .lines()
                .filter(|l| !l.starts_with('#'))
                .map(|l| format!("{l}\n"))
                .collect();
            assert_eq!(block.trim(), file.trim(), "{path}");
        }
    }
}
