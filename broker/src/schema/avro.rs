//! Avro schema resolution: can data written with one schema be read with another?
//!
//! Definitions are parsed with the `apache-avro` crate; the resolution rules are Avro's own
//! (the Java `ResolvingGrammarGenerator` that Pulsar's `SchemaValidatorBuilder` runs), which
//! differ from `apache_avro::schema_compatibility` where Pulsar users rely on them: record
//! names are not compared (Pulsar evolves `User1` into `User2`), named types reached through a
//! reference are resolved structurally, enum symbols are checked when read, not here.
//!
//! - Same kind: primitives match; arrays and maps by their items; records field by field
//!   (matched by name or reader alias; writer-only fields are skipped; a reader-only field
//!   needs a default); enums and fixed by full name (fixed also by size); unions branch by
//!   branch.
//! - Promotions: int → long, float, double; long → float, double; float → double;
//!   string ↔ bytes. Logical types resolve as their underlying type.
//! - A writer union: every branch must resolve. A reader union: the best branch (same kind and
//!   name, then a record that resolves, then a promotion) must resolve.

use std::collections::{HashMap, HashSet};

use apache_avro::Schema;
use apache_avro::schema::{RecordField, RecordSchema};

/// A parsed Avro definition with its named types.
pub struct Parsed {
    root: Schema,
    names: HashMap<String, Schema>,
}

impl Parsed {
    /// Parses an Avro JSON definition.
    pub fn parse(def: &str) -> Result<Parsed, String> {
        let root = Schema::parse_str(def).map_err(|e| format!("invalid Avro schema: {e}"))?;
        let mut names = HashMap::new();
        collect(&root, &mut names);
        Ok(Parsed { root, names })
    }

    /// The definition reached through a reference (itself for anything else).
    fn deref<'a>(&'a self, s: &'a Schema) -> &'a Schema {
        match s {
            Schema::Ref { name } => self.names.get(&name.fullname(None)).unwrap_or(s),
            _ => s,
        }
    }
}

fn collect(s: &Schema, names: &mut HashMap<String, Schema>) {
    match s {
        Schema::Record(r) => {
            names.insert(r.name.fullname(None), s.clone());
            for f in &r.fields {
                collect(&f.schema, names);
            }
        }
        Schema::Enum(e) => {
            names.insert(e.name.fullname(None), s.clone());
        }
        Schema::Fixed(f) => {
            names.insert(f.name.fullname(None), s.clone());
        }
        Schema::Decimal(d) => collect(&d.inner, names),
        Schema::Array(a) => collect(&a.items, names),
        Schema::Map(m) => collect(&m.types, names),
        Schema::Union(u) => u.variants().iter().for_each(|v| collect(v, names)),
        _ => {}
    }
}

/// Avro's own types, logical types mapped to what they annotate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Array,
    Map,
    Union,
    Record,
    Enum,
    Fixed,
}

fn kind(s: &Schema) -> Kind {
    match s {
        Schema::Null => Kind::Null,
        Schema::Boolean => Kind::Boolean,
        Schema::Int | Schema::Date | Schema::TimeMillis => Kind::Int,
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => Kind::Long,
        Schema::Float => Kind::Float,
        Schema::Double => Kind::Double,
        Schema::Bytes | Schema::BigDecimal => Kind::Bytes,
        Schema::String | Schema::Uuid => Kind::String,
        Schema::Decimal(d) => kind(&d.inner),
        Schema::Array(_) => Kind::Array,
        Schema::Map(_) => Kind::Map,
        Schema::Union(_) => Kind::Union,
        Schema::Record(_) => Kind::Record,
        Schema::Enum(_) => Kind::Enum,
        Schema::Fixed(_) | Schema::Duration => Kind::Fixed,
        // An unresolved reference: compare it as a record (by structure when it resolves).
        Schema::Ref { .. } => Kind::Record,
    }
}

/// The full name and aliases of a named type.
fn names_of(s: &Schema) -> Option<(String, Vec<String>)> {
    let aliases = |a: &Option<Vec<apache_avro::schema::Alias>>| {
        a.iter().flatten().map(|a| a.name()).collect::<Vec<_>>()
    };
    match s {
        Schema::Record(r) => Some((r.name.fullname(None), aliases(&r.aliases))),
        Schema::Enum(e) => Some((e.name.fullname(None), aliases(&e.aliases))),
        Schema::Fixed(f) => Some((f.name.fullname(None), aliases(&f.aliases))),
        Schema::Decimal(d) => names_of(&d.inner),
        Schema::Duration => Some(("duration".into(), Vec::new())),
        _ => None,
    }
}

fn same_name(w: &Schema, r: &Schema) -> bool {
    match (names_of(w), names_of(r)) {
        (Some((wn, _)), Some((rn, ra))) => {
            let short = wn.rsplit('.').next().unwrap_or(&wn).to_owned();
            wn == rn || ra.iter().any(|a| *a == wn || *a == short)
        }
        _ => false,
    }
}

fn fixed_size(s: &Schema) -> Option<usize> {
    match s {
        Schema::Fixed(f) => Some(f.size),
        Schema::Decimal(d) => fixed_size(&d.inner),
        Schema::Duration => Some(12),
        _ => None,
    }
}

/// `Ok` when data written with `writer` can be read with `reader`; otherwise why not.
pub fn can_read(writer: &Parsed, reader: &Parsed) -> Result<(), String> {
    Resolver {
        w: writer,
        r: reader,
        seen: HashSet::new(),
    }
    .resolve(&writer.root, &reader.root)
}

struct Resolver<'a> {
    w: &'a Parsed,
    r: &'a Parsed,
    /// (writer, reader) pairs being or already resolved: recursive types end here.
    seen: HashSet<(usize, usize)>,
}

impl<'a> Resolver<'a> {
    fn resolve(&mut self, w: &'a Schema, r: &'a Schema) -> Result<(), String> {
        let (w, r) = (self.w.deref(w), self.r.deref(r));
        if !self
            .seen
            .insert((w as *const Schema as usize, r as *const Schema as usize))
        {
            return Ok(());
        }
        let (wk, rk) = (kind(w), kind(r));
        if wk == rk {
            return match (w, r) {
                (Schema::Union(wu), _) => self.writer_union(wu.variants(), r),
                (Schema::Array(wa), Schema::Array(ra)) => self.resolve(&wa.items, &ra.items),
                (Schema::Map(wm), Schema::Map(rm)) => self.resolve(&wm.types, &rm.types),
                (Schema::Record(wr), Schema::Record(rr)) => self.records(wr, rr),
                _ if wk == Kind::Enum => {
                    ensure(same_name(w, r), || format!("enum {w:?} is not {r:?}"))
                }
                _ if wk == Kind::Fixed => {
                    ensure(same_name(w, r) && fixed_size(w) == fixed_size(r), || {
                        "fixed types differ in name or size".to_owned()
                    })
                }
                _ => Ok(()),
            };
        }
        if let Schema::Union(wu) = w {
            return self.writer_union(wu.variants(), r);
        }
        let promoted = match rk {
            Kind::Long => wk == Kind::Int,
            Kind::Float => matches!(wk, Kind::Int | Kind::Long),
            Kind::Double => matches!(wk, Kind::Int | Kind::Long | Kind::Float),
            Kind::Bytes => wk == Kind::String,
            Kind::String => wk == Kind::Bytes,
            Kind::Union => {
                let Schema::Union(ru) = r else {
                    return Err("reader union expected".into());
                };
                return match self.best_branch(ru.variants(), w) {
                    Some(b) => self.resolve(w, b),
                    None => Err(format!(
                        "found {wk:?}, expecting union of {:?}",
                        branch_kinds(ru.variants())
                    )),
                };
            }
            _ => false,
        };
        ensure(promoted, || format!("found {wk:?}, expecting {rk:?}"))
    }

    fn writer_union(&mut self, branches: &'a [Schema], r: &'a Schema) -> Result<(), String> {
        branches.iter().try_for_each(|b| self.resolve(b, r))
    }

    fn records(&mut self, w: &'a RecordSchema, r: &'a RecordSchema) -> Result<(), String> {
        for wf in &w.fields {
            if let Some(rf) = reader_field(r, &wf.name) {
                self.resolve(&wf.schema, &rf.schema)
                    .map_err(|e| format!("field {}: {e}", wf.name))?;
            }
        }
        for rf in &r.fields {
            let in_writer = w
                .fields
                .iter()
                .any(|wf| wf.name == rf.name || field_aliases(rf).any(|a| *a == wf.name));
            if !in_writer && rf.default.is_none() {
                return Err(format!(
                    "reader field {} is missing in the writer and has no default",
                    rf.name
                ));
            }
        }
        Ok(())
    }

    /// Avro's `bestBranch`: same kind (and name for named types), else a record that resolves,
    /// else a promotion.
    fn best_branch(&mut self, branches: &'a [Schema], w: &'a Schema) -> Option<&'a Schema> {
        let wk = kind(w);
        let mut structural = None;
        for b in branches {
            let b = self.r.deref(b);
            if kind(b) != wk {
                continue;
            }
            if !matches!(wk, Kind::Record | Kind::Enum | Kind::Fixed) {
                return Some(b);
            }
            if names_of(w).map(|n| n.0) == names_of(b).map(|n| n.0) {
                return Some(b);
            }
            if wk == Kind::Record && structural.is_none() {
                let mut trial = Resolver {
                    w: self.w,
                    r: self.r,
                    seen: self.seen.clone(),
                };
                if trial.resolve(w, b).is_ok() {
                    structural = Some(b);
                }
            }
        }
        if structural.is_some() {
            return structural;
        }
        branches.iter().map(|b| self.r.deref(b)).find(|b| {
            let bk = kind(b);
            match wk {
                Kind::Int => matches!(bk, Kind::Long | Kind::Float | Kind::Double),
                Kind::Long => matches!(bk, Kind::Float | Kind::Double),
                Kind::Float => bk == Kind::Double,
                Kind::String => bk == Kind::Bytes,
                Kind::Bytes => bk == Kind::String,
                _ => false,
            }
        })
    }
}

fn branch_kinds(bs: &[Schema]) -> Vec<Kind> {
    bs.iter().map(kind).collect()
}

fn field_aliases(f: &RecordField) -> impl Iterator<Item = &String> {
    f.aliases.iter().flatten()
}

fn reader_field<'a>(r: &'a RecordSchema, name: &str) -> Option<&'a RecordField> {
    r.fields.iter().find(|f| f.name == name).or_else(|| {
        r.fields
            .iter()
            .find(|f| field_aliases(f).any(|a| a == name))
    })
}

fn ensure(ok: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(why()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Parsed {
        Parsed::parse(s).unwrap()
    }

    fn rec(name: &str, fields: &str) -> Parsed {
        p(&format!(
            r#"{{"type":"record","name":"{name}","fields":[{fields}]}}"#
        ))
    }

    #[test]
    fn record_names_are_not_compared_and_field_order_does_not_matter() {
        let u1 = rec(
            "User1",
            r#"{"name":"name","type":["null","string"],"default":null},{"name":"age","type":["null","int"],"default":null}"#,
        );
        let u2 = rec(
            "User2",
            r#"{"name":"age","type":"int"},{"name":"name","type":["null","string"],"default":null}"#,
        );
        assert!(can_read(&u2, &u1).is_ok(), "old reads new (FORWARD)");
        assert!(can_read(&u1, &u2).is_err(), "age may be null in User1");
    }

    #[test]
    fn added_field_needs_a_default_to_read_old_data() {
        let v1 = rec("R", r#"{"name":"a","type":"int"}"#);
        let with_default = rec(
            "R",
            r#"{"name":"a","type":"int"},{"name":"b","type":"string","default":"x"}"#,
        );
        let without = rec(
            "R",
            r#"{"name":"a","type":"int"},{"name":"b","type":"string"}"#,
        );
        assert!(can_read(&v1, &with_default).is_ok());
        assert!(can_read(&v1, &without).is_err());
        // old readers skip the new field
        assert!(can_read(&without, &v1).is_ok());
    }

    #[test]
    fn promotions_and_unions() {
        let int = rec("R", r#"{"name":"a","type":"int"}"#);
        let long = rec("R", r#"{"name":"a","type":"long"}"#);
        let string = rec("R", r#"{"name":"a","type":"string"}"#);
        let nullable_long = rec("R", r#"{"name":"a","type":["null","long"]}"#);
        assert!(can_read(&int, &long).is_ok());
        assert!(can_read(&long, &int).is_err());
        assert!(can_read(&int, &string).is_err());
        assert!(can_read(&int, &nullable_long).is_ok());
        assert!(
            can_read(&nullable_long, &long).is_err(),
            "null branch has no reader"
        );
    }

    #[test]
    fn enums_by_name_fixed_by_size_recursive_types_end() {
        let e1 = p(r#"{"type":"enum","name":"E","symbols":["A","B"]}"#);
        let e2 = p(r#"{"type":"enum","name":"F","symbols":["A","B"]}"#);
        assert!(can_read(&e1, &e2).is_err());
        let f4 = p(r#"{"type":"fixed","name":"F","size":4}"#);
        let f8 = p(r#"{"type":"fixed","name":"F","size":8}"#);
        assert!(can_read(&f4, &f8).is_err());
        let list = p(
            r#"{"type":"record","name":"Node","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","Node"],"default":null}]}"#,
        );
        assert!(can_read(&list, &list).is_ok());
    }
}
