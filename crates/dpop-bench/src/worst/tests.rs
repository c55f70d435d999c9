//! Unit tests of the worst-case classes: request sizes at the limits, every class's expected
//! decision from the native pipeline, the deep merge.

use super::native::native_on;
use super::requests::{common, one, Ctx};
use super::*;
use dpop_guard::config::Config;

fn target() -> Target {
    Target {
        htu: "http://127.0.0.1:10000/bench".into(),
    }
}

#[test]
fn sizes_are_at_the_limits() {
    let t = target();
    for shape in [
        Shape::HeaderNested,
        Shape::HeaderMembers,
        Shape::HeaderOverCap,
        Shape::ClaimsNested,
    ] {
        let ctx = Ctx::new(shape, &t).unwrap();
        let h = one(shape, &ctx, &t, 0).unwrap();
        let len = h[0].1.len();
        assert!(
            (BIG_PROOF - 400..=BIG_PROOF).contains(&len),
            "{shape:?}: {len}"
        );
    }
    let ctx = Ctx::new(Shape::HeaderNestedDefault, &t).unwrap();
    let len = one(Shape::HeaderNestedDefault, &ctx, &t, 0).unwrap()[0]
        .1
        .len();
    assert!(
        (DEFAULT_PROOF - 400..=DEFAULT_PROOF).contains(&len),
        "{len}"
    );
    for shape in [Shape::TokenUpstream, Shape::TokenKeys] {
        let ctx = Ctx::new(shape, &t).unwrap();
        let h = one(shape, &ctx, &t, 0).unwrap();
        let tok = h[0].1.strip_prefix("Bearer ").unwrap();
        assert!(
            (MAX_TOKEN - 400..=MAX_TOKEN).contains(&tok.len()),
            "{shape:?}: {}",
            tok.len()
        );
    }
    let ctx = Ctx::new(Shape::HeadersDup, &t).unwrap();
    let h = one(Shape::HeadersDup, &ctx, &t, 0).unwrap();
    assert_eq!(common(Shape::HeadersDup).len() + h.len(), PAD_HEADERS + 2);
}

#[test]
fn every_class_gets_its_expected_decision() {
    let t = target();
    for class in classes().unwrap() {
        if !class.filter {
            continue;
        }
        let mut cfg = json!({"required": true, "access_token": {"verify": "upstream"}});
        merge(&mut cfg, &class.config);
        let cfg = Config::parse(cfg.to_string().as_bytes()).unwrap();
        // a few requests (and the 1a/2 shapes' sizes) are enough to check the answers
        let pool = generate(&class, &t, 3, 1).unwrap();
        let r = native_on(&class, &cfg, "127.0.0.1:10000", "/bench", &pool, 0.0);
        assert!(r.is_ok(), "{}: {:?}", class.id, r.err());
    }
}

#[test]
fn merge_is_deep() {
    let mut a = json!({"a": {"b": 1, "c": 2}, "d": 3});
    merge(&mut a, &json!({"a": {"b": 5}, "e": 6}));
    assert_eq!(a, json!({"a": {"b": 5, "c": 2}, "d": 3, "e": 6}));
}
