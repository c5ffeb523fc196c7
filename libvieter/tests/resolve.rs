//! Dependency closures of AUR builds (`libvieter::resolve`) against a fake AUR that counts its calls
//! and fails the test on a name asked twice.
#![cfg(feature = "builds")]

use std::collections::BTreeMap;

use libvieter::aur::AurPackage;
use libvieter::db::{ArchiveKind, Database, DbEntry};
use libvieter::depend::Dependency;
use libvieter::name::PkgName;
use libvieter::resolve::{resolve, AurLookup, Available, Choice, Provider, ResolveError, Source};

fn n(s: &str) -> PkgName {
    PkgName::new(s).unwrap()
}

fn d(s: &str) -> Dependency {
    Dependency::parse(s).unwrap()
}

fn deps(list: &[&str]) -> Vec<Dependency> {
    list.iter().map(|s| d(s)).collect()
}

/// An AUR package of its own base, version 1.0-1, no votes, no lists.
fn aur(name: &str) -> AurPackage {
    AurPackage {
        name: n(name),
        package_base: n(name),
        version: "1.0-1".parse().unwrap(),
        description: None,
        url: None,
        maintainer: None,
        num_votes: 0,
        popularity: 0.0,
        out_of_date: None,
        first_submitted: None,
        last_modified: None,
        depends: Vec::new(),
        make_depends: Vec::new(),
        check_depends: Vec::new(),
        opt_depends: Vec::new(),
        provides: Vec::new(),
        conflicts: Vec::new(),
        replaces: Vec::new(),
        license: Vec::new(),
        keywords: Vec::new(),
    }
}

fn needing(name: &str, depends: &[&str]) -> AurPackage {
    AurPackage { depends: deps(depends), ..aur(name) }
}

#[derive(Debug, PartialEq)]
struct Down;

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the AUR is down")
    }
}

impl std::error::Error for Down {}

#[derive(Default)]
struct FakeAur {
    packages: Vec<AurPackage>,
    siblings: BTreeMap<String, Vec<String>>,
    info_calls: Vec<Vec<String>>,
    searches: Vec<String>,
    bases_asked: Vec<String>,
    down: bool,
}

impl FakeAur {
    fn new(packages: Vec<AurPackage>) -> Self {
        FakeAur { packages, ..Default::default() }
    }

    fn asked(&self) -> Vec<Vec<&str>> {
        self.info_calls.iter().map(|c| c.iter().map(String::as_str).collect()).collect()
    }
}

impl AurLookup for FakeAur {
    type Error = Down;

    fn info(&mut self, names: &[PkgName]) -> Result<Vec<AurPackage>, Down> {
        if self.down {
            return Err(Down);
        }
        for name in names {
            assert!(
                !self.info_calls.iter().flatten().any(|asked| asked == name.as_str()),
                "{name} asked twice: {:?}",
                self.info_calls
            );
        }
        self.info_calls.push(names.iter().map(|n| n.to_string()).collect());
        Ok(self.packages.iter().filter(|p| names.contains(&p.name)).cloned().collect())
    }

    fn search_provides(&mut self, term: &str) -> Result<Vec<AurPackage>, Down> {
        assert!(!self.searches.iter().any(|s| s == term), "{term} searched twice");
        self.searches.push(term.to_owned());
        // Like the RPC: the packages named so or providing the name, without any list.
        Ok(self
            .packages
            .iter()
            .filter(|p| p.name.as_str() == term || p.provides.iter().any(|pr| pr.name == term))
            .map(|p| AurPackage {
                name: p.name.clone(),
                package_base: p.package_base.clone(),
                version: p.version.clone(),
                num_votes: p.num_votes,
                ..aur(p.name.as_str())
            })
            .collect())
    }

    fn base_packages(&mut self, base: &PkgName) -> Result<Vec<PkgName>, Down> {
        assert!(!self.bases_asked.iter().any(|b| b == base.as_str()), "{base} asked twice");
        self.bases_asked.push(base.to_string());
        Ok(self.siblings.get(base.as_str()).into_iter().flatten().map(|s| n(s)).collect())
    }
}

fn sync(name: &str, version: &str, provides: &[&str]) -> Provider {
    Provider {
        name: n(name),
        version: version.parse().unwrap(),
        provides: deps(provides),
        source: Source::Sync("extra".parse().unwrap()),
    }
}

fn names<'a>(list: impl IntoIterator<Item = &'a PkgName>) -> Vec<&'a str> {
    list.into_iter().map(PkgName::as_str).collect()
}

fn layers(c: &libvieter::resolve::Closure) -> Vec<Vec<String>> {
    c.layers().into_iter().map(|l| l.into_iter().map(String::from).collect()).collect()
}

#[test]
fn a_chain_of_three_aur_packages() {
    let mut fake =
        FakeAur::new(vec![needing("app", &["libfoo"]), needing("libfoo", &["libbar>=1"]), aur("libbar")]);
    let c = resolve(&[n("app")], &Available::new(), &mut fake).unwrap();
    assert_eq!(names(c.bases().map(|b| &b.name)), ["app", "libbar", "libfoo"]);
    assert_eq!(
        c.edges().map(|(a, b)| (a.as_str(), b.as_str())).collect::<Vec<_>>(),
        [("app", "libfoo"), ("libfoo", "libbar")]
    );
    assert_eq!(layers(&c), [vec!["libbar"], vec!["libfoo"], vec!["app"]]);
    assert_eq!(names(&c.build_order()), ["libbar", "libfoo", "app"]);
    assert_eq!(names(c.roots()), ["app"]);
    assert_eq!(names(c.needs(&n("libfoo"))), ["libbar"]);
    assert!(c.choices().is_empty());
    assert_eq!(fake.asked(), [vec!["app"], vec!["libfoo"], vec!["libbar"]]);
    assert!(fake.searches.is_empty());
}

#[test]
fn sync_databases_read_with_the_db_reader_satisfy_dependencies() {
    // A sync db as pacman downloads it: written, then read back with Database::read.
    let mut db = Database::new();
    for desc in [
        "%FILENAME%\nglibc-2.39-1-x86_64.pkg.tar.zst\n\n%NAME%\nglibc\n\n%VERSION%\n2.39-1\n\n",
        "%FILENAME%\nbash-5.2-1-x86_64.pkg.tar.zst\n\n%NAME%\nbash\n\n%VERSION%\n5.2-1\n\n%PROVIDES%\nsh\n\n%DEPENDS%\nglibc\n\n",
        "%FILENAME%\nzlib-1:1.3-2-x86_64.pkg.tar.zst\n\n%NAME%\nzlib\n\n%VERSION%\n1:1.3-2\n\n%PROVIDES%\nlibz.so=1-64\n\n",
    ] {
        db.insert(DbEntry::from_parts(desc.to_owned(), None).unwrap().compress(0).unwrap());
    }
    let mut bytes = Vec::new();
    db.write(&mut bytes, ArchiveKind::Db).unwrap();
    let read = Database::read(&bytes[..]).unwrap();
    let mut available = Available::new();
    available.add_database(Source::Sync("core".parse().unwrap()), &read);
    assert_eq!(available.len(), 3);
    assert_eq!(available.satisfies(&d("sh")).map(|p| p.name.as_str()), Some("bash"));
    assert_eq!(available.satisfies(&d("libz.so>=1")).map(|p| p.name.as_str()), Some("zlib"));
    assert!(available.satisfies(&d("zlib>=1:1.3")).is_some());
    assert!(available.satisfies(&d("zlib>=1.3")).is_some(), "epoch 1 beats epoch 0");
    assert!(available.satisfies(&d("zlib<1.3")).is_none());
    assert!(available.satisfies(&d("sh>=5")).is_none(), "bash provides sh unversioned");

    let mut fake = FakeAur::new(vec![AurPackage {
        make_depends: deps(&["glibc>=2.38"]),
        check_depends: deps(&["sh"]),
        ..needing("app", &["libz.so"])
    }]);
    let c = resolve(&[n("app")], &available, &mut fake).unwrap();
    assert_eq!(names(c.bases().map(|b| &b.name)), ["app"]);
    assert_eq!(c.edges().count(), 0);
    assert_eq!(fake.asked(), [vec!["app"]], "nothing installable is looked up");
}

#[test]
fn versioned_and_unversioned_provides() {
    let mut available = Available::new();
    available.add(sync("libfoo", "2.1-1", &["libfoo.so=2-64", "foo-virtual", "foo-ge>=3"]));
    available.add(sync("java-runtime-common", "3-1", &[]));
    available.add(sync("jre17", "17.0.9-1", &["java-runtime=17"]));
    available.add(sync("jre21", "21.0.1-1", &["java-runtime=21"]));
    let who = |dep: &str| available.satisfies(&d(dep)).map(|p| p.name.to_string());
    assert_eq!(who("libfoo.so").as_deref(), Some("libfoo"));
    assert_eq!(who("libfoo.so=2-64").as_deref(), Some("libfoo"));
    assert_eq!(who("libfoo.so>=2").as_deref(), Some("libfoo"));
    assert_eq!(who("libfoo.so>=3"), None);
    assert_eq!(who("foo-virtual").as_deref(), Some("libfoo"));
    assert_eq!(who("foo-virtual=1"), None, "an unversioned provide satisfies only unversioned dependencies");
    assert_eq!(who("foo-ge").as_deref(), Some("libfoo"));
    assert_eq!(who("foo-ge>=3"), None, "only = provides a version");
    assert_eq!(who("java-runtime").as_deref(), Some("jre17"), "first added");
    assert_eq!(who("java-runtime>=21").as_deref(), Some("jre21"));
    assert_eq!(who("java-runtime<17"), None);
    assert_eq!(who("libfoo=2.1").as_deref(), Some("libfoo"), "a version without pkgrel ignores the pkgrel");
    assert_eq!(who("nothing"), None);
}

#[test]
fn the_target_repository_satisfies_dependencies() {
    let mut available = Available::new();
    available.add(Provider {
        source: Source::Target("extra-aur".parse().unwrap()),
        ..sync("libfoo", "1.0-1", &[])
    });
    let mut fake = FakeAur::new(vec![needing("app", &["libfoo>=1"]), aur("libfoo")]);
    let c = resolve(&[n("app")], &available, &mut fake).unwrap();
    assert_eq!(names(c.bases().map(|b| &b.name)), ["app"]);
    assert_eq!(fake.asked(), [vec!["app"]]);

    // A too old version there does not count: the AUR's libfoo is built.
    let mut old = Available::new();
    old.add(Provider {
        source: Source::Target("extra-aur".parse().unwrap()),
        ..sync("libfoo", "0.9-1", &[])
    });
    let mut fake = FakeAur::new(vec![needing("app", &["libfoo>=1"]), aur("libfoo")]);
    let c = resolve(&[n("app")], &old, &mut fake).unwrap();
    assert_eq!(layers(&c), [vec!["libfoo"], vec!["app"]]);
}

#[test]
fn the_package_of_the_same_name_wins_without_a_search() {
    let mut fake = FakeAur::new(vec![
        needing("app", &["bar"]),
        AurPackage { num_votes: 1, ..aur("bar") },
        AurPackage { num_votes: 500, provides: deps(&["bar=9"]), ..aur("bar-git") },
    ]);
    let c = resolve(&[n("app")], &Available::new(), &mut fake).unwrap();
    assert_eq!(names(c.needs(&n("app"))), ["bar"]);
    assert!(c.choices().is_empty());
    assert!(fake.searches.is_empty());
}

#[test]
fn the_most_voted_provider_wins_ties_by_name_and_the_choice_is_recorded() {
    let provider = |name: &str, votes: u64| AurPackage {
        num_votes: votes,
        provides: deps(&["java-environment=21"]),
        ..aur(name)
    };
    let mut fake = FakeAur::new(vec![
        needing("app", &["java-environment>=17"]),
        provider("jdk-c", 50),
        provider("jdk-a", 10),
        provider("jdk-b", 50),
        AurPackage { num_votes: 1000, provides: deps(&["java-environment=11"]), ..aur("jdk11") },
    ]);
    let c = resolve(&[n("app")], &Available::new(), &mut fake).unwrap();
    assert_eq!(names(c.needs(&n("app"))), ["jdk-b"]);
    assert_eq!(
        c.choices(),
        [Choice {
            dependency: d("java-environment>=17"),
            chosen: n("jdk-b"),
            candidates: vec![n("jdk-a"), n("jdk-b"), n("jdk-c")],
        }],
        "jdk11 provides too old a version"
    );
    // The name, then the search, then the providers' info (their lists) in one call.
    assert_eq!(
        fake.asked(),
        [vec!["app"], vec!["java-environment"], vec!["jdk-a", "jdk-b", "jdk-c", "jdk11"]]
    );
    assert_eq!(fake.searches, ["java-environment"]);
}

#[test]
fn an_aur_package_of_the_name_with_too_old_a_version_is_no_provider() {
    let mut fake = FakeAur::new(vec![
        needing("app", &["foo>=2"]),
        AurPackage { num_votes: 900, ..aur("foo") },
        AurPackage {
            num_votes: 3,
            provides: deps(&["foo=2.5"]),
            version: "2.5.r1-1".parse().unwrap(),
            ..aur("foo-git")
        },
    ]);
    let c = resolve(&[n("app")], &Available::new(), &mut fake).unwrap();
    assert_eq!(names(c.needs(&n("app"))), ["foo-git"]);
    assert_eq!(c.choices()[0].candidates, [n("foo-git")]);

    let mut fake = FakeAur::new(vec![needing("app", &["foo>=2"]), aur("foo")]);
    let e = resolve(&[n("app")], &Available::new(), &mut fake).unwrap_err();
    assert_eq!(e.to_string(), "app → foo>=2: no version in the AUR or any sync db satisfies it");
}

#[test]
fn split_package_bases_are_one_build() {
    let split = |name: &str| AurPackage { package_base: n("foo"), ..aur(name) };
    let mut fake = FakeAur::new(vec![
        needing("app", &["foo-libs", "foo-utils"]),
        AurPackage { depends: deps(&["foo-libs"]), ..split("foo-utils") },
        AurPackage { make_depends: deps(&["cmake-aur"]), ..split("foo-libs") },
        aur("cmake-aur"),
    ]);
    let c = resolve(&[n("app")], &Available::new(), &mut fake).unwrap();
    assert_eq!(names(c.bases().map(|b| &b.name)), ["app", "cmake-aur", "foo"]);
    let foo = c.base(&n("foo")).unwrap();
    assert_eq!(names(foo.packages.iter().map(|p| &p.name)), ["foo-libs", "foo-utils"]);
    assert_eq!(c.edges().map(|(a, b)| format!("{a}>{b}")).collect::<Vec<_>>(), ["app>foo", "foo>cmake-aur"]);
    assert_eq!(layers(&c), [vec!["cmake-aur"], vec!["foo"], vec!["app"]]);
    // Two roots of one base are one root.
    let mut fake = FakeAur::new(vec![split("foo-libs"), split("foo-utils")]);
    let c = resolve(&[n("foo-utils"), n("foo-libs")], &Available::new(), &mut fake).unwrap();
    assert_eq!(names(c.roots()), ["foo"]);
    assert_eq!(fake.asked(), [vec!["foo-utils", "foo-libs"]]);
}

#[test]
fn lookups_are_batched_per_level_and_never_repeated() {
    let mut fake = FakeAur::new(vec![
        needing("app", &["a", "b", "c", "glibc"]),
        needing("tool", &["a", "c"]),
        needing("a", &["d"]),
        needing("b", &["d", "e"]),
        needing("c", &["e", "a"]),
        aur("d"),
        aur("e"),
    ]);
    let mut available = Available::new();
    available.add(sync("glibc", "2.39-1", &[]));
    let c = resolve(&[n("app"), n("tool"), n("app")], &available, &mut fake).unwrap();
    assert_eq!(fake.asked(), [vec!["app", "tool"], vec!["a", "b", "c"], vec!["d", "e"]]);
    assert_eq!(names(c.roots()), ["app", "tool"]);
    assert_eq!(layers(&c), [vec!["d", "e"], vec!["a", "b"], vec!["c"], vec!["app", "tool"]]);
}

#[test]
fn an_unsatisfiable_dependency_names_its_chain() {
    let mut fake = FakeAur::new(vec![needing("app", &["libfoo"]), needing("libfoo", &["libbar"])]);
    let e = resolve(&[n("app")], &Available::new(), &mut fake).unwrap_err();
    assert_eq!(e.to_string(), "app → libfoo → libbar: not in the AUR or any sync db");
    match e {
        ResolveError::Unsatisfiable { chain, dependency } => {
            assert_eq!((chain, dependency), (vec!["app".to_owned(), "libfoo".to_owned()], d("libbar")));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.searches, ["libbar"], "searched by provides before giving up");
}

#[test]
fn cycles_among_aur_bases_are_refused() {
    let mut fake = FakeAur::new(vec![
        needing("app", &["a"]),
        needing("a", &["b"]),
        AurPackage { make_depends: deps(&["c"]), ..aur("b") },
        needing("c", &["a"]),
    ]);
    let e = resolve(&[n("app")], &Available::new(), &mut fake).unwrap_err();
    assert_eq!(
        e.to_string(),
        "dependency cycle among AUR package bases: a → b → c → a (makepkg cannot build them)"
    );
    assert!(matches!(e, ResolveError::Cycle { ref bases } if names(bases) == ["a", "b", "c", "a"]));

    // Packages of one base needing each other are no cycle.
    let split = |name: &str, dep: &str| AurPackage { package_base: n("foo"), ..needing(name, &[dep]) };
    let mut fake = FakeAur::new(vec![split("foo-gui", "foo-core"), split("foo-core", "foo-gui")]);
    let c = resolve(&[n("foo-gui")], &Available::new(), &mut fake).unwrap();
    assert_eq!(layers(&c), [vec!["foo"]]);

    // Built once into the target repository, a member no longer needs building: no cycle.
    let mut available = Available::new();
    available.add(Provider { source: Source::Target("aur".parse().unwrap()), ..sync("c", "1.0-1", &[]) });
    let mut fake = FakeAur::new(vec![needing("a", &["b"]), needing("b", &["c"]), needing("c", &["a"])]);
    let c = resolve(&[n("a")], &available, &mut fake).unwrap();
    assert_eq!(layers(&c), [vec!["b"], vec!["a"]]);
    // The report says which published package broke the cycle.
    let report = c.report();
    assert_eq!(report.installed.len(), 1, "{report:?}");
    let used = &report.installed[0];
    assert_eq!((used.dependency.as_str(), used.package.as_str()), ("c", "c"));
    assert_eq!((used.source.as_str(), used.repo.as_str(), used.version.as_str()), ("target", "aur", "1.0-1"));
    assert_eq!(report.layers, [vec![n("b")], vec![n("a")]]);
    let b = report.bases.iter().find(|b| b.name.as_str() == "b").unwrap();
    assert_eq!(b.needs, Vec::<PkgName>::new(), "c is installable: no edge");
}

#[test]
fn a_package_in_the_closure_that_provides_a_dependency_is_used() {
    let mut fake = FakeAur::new(vec![
        needing("app", &["foo-git", "tool"]),
        AurPackage { provides: deps(&["foo=2"]), ..aur("foo-git") },
        needing("tool", &["foo>=1"]),
        aur("foo"),
    ]);
    let c = resolve(&[n("app")], &Available::new(), &mut fake).unwrap();
    assert_eq!(names(c.bases().map(|b| &b.name)), ["app", "foo-git", "tool"]);
    assert_eq!(names(c.needs(&n("tool"))), ["foo-git"]);
    assert!(!fake.info_calls.iter().flatten().any(|name| name == "foo"), "{:?}", fake.info_calls);
}

#[test]
fn other_packages_of_a_base_are_resolved_when_the_lookup_lists_them() {
    let split = |name: &str| AurPackage { package_base: n("foo"), ..aur(name) };
    let mut fake = FakeAur::new(vec![
        needing("app", &["foo-libs"]),
        split("foo-libs"),
        AurPackage { depends: deps(&["docs-tool"]), ..split("foo-doc") },
        aur("docs-tool"),
    ]);
    fake.siblings.insert("foo".into(), vec!["foo-libs".into(), "foo-doc".into(), "foo-gone".into()]);
    let c = resolve(&[n("app")], &Available::new(), &mut fake).unwrap();
    assert_eq!(names(c.base(&n("foo")).unwrap().packages.iter().map(|p| &p.name)), ["foo-libs", "foo-doc"]);
    assert_eq!(layers(&c), [vec!["docs-tool"], vec!["foo"], vec!["app"]]);
    assert_eq!(fake.bases_asked, ["app", "foo", "docs-tool"]);
}

#[test]
fn roots_must_be_aur_packages_and_lookup_failures_surface() {
    let mut fake = FakeAur::new(vec![aur("app")]);
    let e = resolve(&[n("app"), n("nope")], &Available::new(), &mut fake).unwrap_err();
    assert!(matches!(e, ResolveError::NotInAur { ref name } if name.as_str() == "nope"), "{e:?}");
    assert!(e.to_string().starts_with("nope: no AUR package has this name"), "{e}");

    let mut fake = FakeAur { down: true, ..FakeAur::new(vec![aur("app")]) };
    let e = resolve(&[n("app")], &Available::new(), &mut fake).unwrap_err();
    assert!(matches!(e, ResolveError::Lookup(Down)));
    assert_eq!(e.to_string(), "AUR lookup failed: the AUR is down");

    let mut fake = FakeAur::new(vec![]);
    let c = resolve(&[], &Available::new(), &mut fake).unwrap();
    assert_eq!((c.bases().count(), fake.info_calls.len()), (0, 0));
}

#[test]
fn one_character_dependencies_are_not_searched() {
    let mut fake = FakeAur::new(vec![needing("app", &["r"])]);
    let e = resolve(&[n("app")], &Available::new(), &mut fake).unwrap_err();
    assert_eq!(e.to_string(), "app → r: not in the AUR or any sync db");
    assert!(fake.searches.is_empty(), "aurweb refuses one-character terms");
}

#[test]
fn layers_of_a_diamond_are_deterministic() {
    let pkgs = || {
        vec![
            needing("top", &["left", "right"]),
            needing("right", &["bottom"]),
            needing("left", &["bottom", "side"]),
            aur("bottom"),
            aur("side"),
        ]
    };
    let first = resolve(&[n("top")], &Available::new(), &mut FakeAur::new(pkgs())).unwrap();
    assert_eq!(layers(&first), [vec!["bottom", "side"], vec!["left", "right"], vec!["top"]]);
    let mut reversed = pkgs();
    reversed.reverse();
    let second = resolve(&[n("top")], &Available::new(), &mut FakeAur::new(reversed)).unwrap();
    assert_eq!(first.layers(), second.layers());
    // Every base comes after what it needs.
    let order = first.build_order();
    for (base, needed) in first.edges() {
        let at = |b: &PkgName| order.iter().position(|o| o == b).unwrap();
        assert!(at(needed) < at(base), "{needed} before {base}");
    }
}
