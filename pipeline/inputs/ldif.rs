//! Active Directory exports in LDIF (RFC 2849), as `ldapsearch -LLL` writes them.
//!
//! The reader understands `version: 1`, comments, folded lines, base64 values (`attr::`, also
//! for `dn::`), attribute options (`objectGUID;binary`) and several values per attribute. It
//! keeps computers, users and groups, and the memberships between them; other entries (OUs,
//! containers) are counted and passed over.
//!
//! Exports of large directories run to hundreds of megabytes, so a file is read in blocks that
//! end on an entry boundary, and the blocks are parsed on all cores.

use std::borrow::Cow;
use std::io::Read;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int64Builder, RecordBatch, StringBuilder, TimestampMillisecondBuilder,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rayon::prelude::*;

use super::{InputError, InputKind, Reject, Source, dn, schema, time};
use crate::ad::object::ObjectKind;

/// Bytes read per block before it is cut at the last entry boundary.
const BLOCK_BYTES: usize = 2 << 20;

/// Blocks parsed at once; bounds memory to a few dozen megabytes whatever the file size.
const BLOCKS_IN_FLIGHT: usize = 16;

/// What the reader made of a set of LDIF exports.
#[derive(Debug, Default)]
pub struct DirectoryInput {
    pub computers: Vec<RecordBatch>,
    pub users: Vec<RecordBatch>,
    pub groups: Vec<RecordBatch>,
    pub memberships: Vec<RecordBatch>,
    pub rejects: Vec<Reject>,
    pub files: usize,
    pub entries: usize,
    /// Entries that are neither computers, users nor groups, and tombstones.
    pub passed_over: usize,
}

/// Reads every export in `sources`. Blocks from all files share the cores, so a directory
/// exported as many small files reads as fast as one large one.
pub fn read(sources: &[Source]) -> Result<DirectoryInput, InputError> {
    let mut input = DirectoryInput::default();
    let mut pending: Vec<(String, Block)> = Vec::with_capacity(BLOCKS_IN_FLIGHT);

    for source in sources {
        let name = source.name();
        let mut blocks = Blocks::new(open(source)?);
        loop {
            let block = blocks.next_block().map_err(|error| InputError::Read {
                path: name.clone().into(),
                source: error,
            })?;
            let Some(block) = block else { break };
            pending.push((name.clone(), block));
            if pending.len() == BLOCKS_IN_FLIGHT {
                parse_blocks(&mut pending, &mut input);
            }
        }
        input.files += 1;
    }
    parse_blocks(&mut pending, &mut input);
    Ok(input)
}

fn open(source: &Source) -> Result<Box<dyn Read>, InputError> {
    Ok(match source {
        Source::File(path) => Box::new(std::fs::File::open(path).map_err(
            |error| match error.kind() {
                std::io::ErrorKind::NotFound => InputError::Missing { path: path.clone() },
                _ => InputError::Read {
                    path: path.clone(),
                    source: error,
                },
            },
        )?),
        Source::Embedded { bytes, .. } => Box::new(*bytes),
        Source::Memory { bytes, .. } => Box::new(std::io::Cursor::new(bytes.clone())),
    })
}

/// Parses the pending blocks on all cores and appends their tables in file order.
fn parse_blocks(pending: &mut Vec<(String, Block)>, input: &mut DirectoryInput) {
    let parts: Vec<BlockTables> = pending
        .par_iter()
        .map(|(name, block)| parse_block(name, block))
        .collect();
    pending.clear();

    for part in parts {
        input.entries += part.entries;
        input.passed_over += part.passed_over;
        input.rejects.extend(part.rejects);
        input.computers.push(part.computers.finish());
        input.users.push(part.users.finish());
        input.groups.push(part.groups.finish());
        input.memberships.push(part.memberships.finish());
    }
}

/// A run of whole entries and the line number its first line has in the file.
struct Block {
    first_line: usize,
    bytes: Vec<u8>,
}

/// Cuts a stream into blocks that end on a blank line, so no entry spans two blocks.
struct Blocks<R> {
    reader: R,
    carry: Vec<u8>,
    next_line: usize,
    done: bool,
}

impl<R: Read> Blocks<R> {
    fn new(reader: R) -> Self {
        Blocks {
            reader,
            carry: Vec::new(),
            next_line: 1,
            done: false,
        }
    }

    fn next_block(&mut self) -> std::io::Result<Option<Block>> {
        while !self.done {
            let start = self.carry.len();
            self.carry.resize(start + BLOCK_BYTES, 0);
            let read = self.reader.read(&mut self.carry[start..])?;
            self.carry.truncate(start + read);
            if read == 0 {
                self.done = true;
                break;
            }

            // Cut after the last blank line; what follows waits for the next read.
            if let Some(cut) = last_entry_boundary(&self.carry) {
                let rest = self.carry.split_off(cut);
                let bytes = std::mem::replace(&mut self.carry, rest);
                return Ok(Some(self.block(bytes)));
            }
        }

        if self.carry.is_empty() {
            return Ok(None);
        }
        let bytes = std::mem::take(&mut self.carry);
        Ok(Some(self.block(bytes)))
    }

    fn block(&mut self, bytes: Vec<u8>) -> Block {
        let first_line = self.next_line;
        self.next_line += memchr::memchr_iter(b'\n', &bytes).count();
        Block { first_line, bytes }
    }
}

/// The offset just after the last blank line (`\n\n` or `\n\r\n`), if any.
fn last_entry_boundary(bytes: &[u8]) -> Option<usize> {
    let mut end = bytes.len();
    while let Some(newline) = memchr::memrchr(b'\n', &bytes[..end]) {
        let before = &bytes[..newline];
        let before = before.strip_suffix(b"\r").unwrap_or(before);
        if before.ends_with(b"\n") {
            return Some(newline + 1);
        }
        end = newline;
    }
    None
}

/// The tables of one block.
#[derive(Default)]
struct BlockTables {
    computers: ComputerColumns,
    users: UserColumns,
    groups: GroupColumns,
    memberships: MembershipColumns,
    rejects: Vec<Reject>,
    entries: usize,
    passed_over: usize,
}

fn parse_block(file: &str, block: &Block) -> BlockTables {
    let mut tables = BlockTables::default();
    let mut lines: Vec<&[u8]> = Vec::new();
    let mut entry_line = block.first_line;
    let lines_of_block = (block.first_line..).zip(block.bytes.split(|&byte| byte == b'\n'));
    for (line_number, raw) in lines_of_block {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            if !lines.is_empty() {
                tables.add_entry(file, entry_line, &lines);
                lines.clear();
            }
        } else {
            if lines.is_empty() {
                entry_line = line_number;
            }
            lines.push(line);
        }
    }
    if !lines.is_empty() {
        tables.add_entry(file, entry_line, &lines);
    }
    tables
}

/// One entry's attributes that the correlation uses. Values borrow from the block unless they
/// were base64.
#[derive(Default)]
struct Entry<'a> {
    dn: Cow<'a, str>,
    classes: Vec<Cow<'a, str>>,
    cn: Option<Cow<'a, str>>,
    sam_account_name: Option<Cow<'a, str>>,
    dns_host_name: Option<Cow<'a, str>>,
    os: Option<Cow<'a, str>>,
    os_version: Option<Cow<'a, str>>,
    object_guid: Option<Vec<u8>>,
    when_changed: Option<Cow<'a, str>>,
    managed_by: Option<Cow<'a, str>>,
    members: Vec<Cow<'a, str>>,
    member_of: Vec<Cow<'a, str>>,
    user_principal_name: Option<Cow<'a, str>>,
    user_account_control: Option<Cow<'a, str>>,
    last_logon_timestamp: Option<Cow<'a, str>>,
    is_deleted: bool,
}

/// Why an entry was rejected: the attribute at fault, if one is, and the problem.
type EntryError = (Option<String>, String);

impl BlockTables {
    fn add_entry(&mut self, file: &str, line: usize, lines: &[&[u8]]) {
        let lines = skip_version_and_comments(lines);
        if lines.is_empty() {
            return;
        }
        self.entries += 1;

        let result = unfold(&lines).and_then(|logical| {
            let entry = parse_entry(&logical)?;
            self.add(&entry)
        });
        if let Err((field, problem)) = result {
            let raw = lines
                .iter()
                .map(|l| String::from_utf8_lossy(l))
                .collect::<Vec<_>>();
            self.rejects.push(Reject {
                input: InputKind::Ldif,
                file: file.to_owned(),
                record: format!("entry at line {line}"),
                field,
                problem,
                tenant_id: None,
                endpoint_id: None,
                raw: Some(raw.join("\n")),
            });
        }
    }

    fn add(&mut self, entry: &Entry<'_>) -> Result<(), EntryError> {
        let classes = entry.classes.iter().map(|class| class.as_bytes());
        let kind = ObjectKind::from_classes(classes).filter(|_| !entry.is_deleted);
        let Some(kind) = kind else {
            self.passed_over += 1;
            return Ok(());
        };

        let parts = dn::analyze(&entry.dn).map_err(|e| (Some("dn".into()), e))?;
        let (dn_norm, domain) = (parts.canonical, parts.domain);
        let guid = match &entry.object_guid {
            Some(bytes) => Some(guid_text(bytes)?),
            None => None,
        };

        // Memberships from both sides; a DN that does not parse rejects the whole entry, since
        // a lost membership could hide a VIP.
        let mut memberships = Vec::with_capacity(entry.members.len() + entry.member_of.len());
        for member in &entry.members {
            let member = dn::normalize(member).map_err(|e| (Some("member".into()), e))?;
            memberships.push((dn_norm.clone(), member));
        }
        for group in &entry.member_of {
            let group = dn::normalize(group).map_err(|e| (Some("memberOf".into()), e))?;
            memberships.push((group, dn_norm.clone()));
        }

        match kind {
            ObjectKind::Computer => {
                let names = (dn_norm.as_str(), domain.as_deref(), parts.first_value);
                self.computers.append(entry, names, guid)?
            }
            ObjectKind::User => self.users.append(entry, &dn_norm, domain.as_deref(), guid),
            ObjectKind::Group => self.groups.append(entry, &dn_norm, domain.as_deref(), guid),
        }
        for (group, member) in memberships {
            self.memberships.group_dn_norm.append_value(group);
            self.memberships.member_dn_norm.append_value(member);
        }
        Ok(())
    }
}

/// Drops a leading `version:` line and comment lines (with their folded continuations).
fn skip_version_and_comments<'a>(lines: &[&'a [u8]]) -> Vec<&'a [u8]> {
    let mut kept = Vec::with_capacity(lines.len());
    let mut in_comment = false;
    for (index, line) in lines.iter().enumerate() {
        if line.starts_with(b"#") {
            in_comment = true;
            continue;
        }
        if in_comment && line.starts_with(b" ") {
            continue;
        }
        in_comment = false;
        if index == 0 && line.starts_with(b"version:") {
            continue;
        }
        kept.push(*line);
    }
    kept
}

/// Joins folded lines: a line that starts with one space continues the one before it.
fn unfold<'a>(lines: &[&'a [u8]]) -> Result<Vec<Cow<'a, [u8]>>, EntryError> {
    let mut logical: Vec<Cow<'a, [u8]>> = Vec::with_capacity(lines.len());
    for line in lines {
        if let Some(rest) = line.strip_prefix(b" ") {
            let Some(last) = logical.last_mut() else {
                return Err((None, "the entry starts with a continuation line".into()));
            };
            last.to_mut().extend_from_slice(rest);
        } else {
            logical.push(Cow::Borrowed(line));
        }
    }
    Ok(logical)
}

fn parse_entry<'a>(lines: &'a [Cow<'a, [u8]>]) -> Result<Entry<'a>, EntryError> {
    let mut entry = Entry::default();
    for (index, line) in lines.iter().enumerate() {
        let (name, value) = split_line(line)?;
        if index == 0 {
            if !name.eq_ignore_ascii_case("dn") {
                return Err((None, format!("the entry starts with {name:?}, not with dn")));
            }
            entry.dn = text(name, value)?;
            continue;
        }

        // Options such as `;binary` do not change which attribute it is.
        let attribute = name.split(';').next().unwrap_or(name);
        let mut folded = [0u8; 32];
        match fold_case(attribute, &mut folded) {
            "dn" => return Err((Some("dn".into()), "the entry has two dn lines".into())),
            "changetype" => {
                return Err((
                    Some("changetype".into()),
                    "change records are not an export; read exports written by ldapsearch".into(),
                ));
            }
            "objectclass" => entry.classes.push(text(name, value)?),
            "cn" => entry.cn = Some(text(name, value)?),
            "samaccountname" => entry.sam_account_name = Some(text(name, value)?),
            "dnshostname" => entry.dns_host_name = Some(text(name, value)?),
            "operatingsystem" => entry.os = Some(text(name, value)?),
            "operatingsystemversion" => entry.os_version = Some(text(name, value)?),
            "objectguid" => entry.object_guid = Some(value.bytes()?.into_owned()),
            "whenchanged" => entry.when_changed = Some(text(name, value)?),
            "managedby" => entry.managed_by = Some(text(name, value)?),
            "member" => entry.members.push(text(name, value)?),
            "memberof" => entry.member_of.push(text(name, value)?),
            "userprincipalname" => entry.user_principal_name = Some(text(name, value)?),
            "useraccountcontrol" => entry.user_account_control = Some(text(name, value)?),
            "lastlogontimestamp" => entry.last_logon_timestamp = Some(text(name, value)?),
            "isdeleted" => entry.is_deleted = text(name, value)?.eq_ignore_ascii_case("true"),
            _ => value.check()?,
        }
    }
    Ok(entry)
}

/// `name` lower-cased into `buffer`, without allocating: this runs for every line of an
/// export. A name too long for the buffer is none of the attributes the reader looks for.
fn fold_case<'b>(name: &str, buffer: &'b mut [u8; 32]) -> &'b str {
    let Some(folded) = buffer.get_mut(..name.len()) else {
        return "";
    };
    folded.copy_from_slice(name.as_bytes());
    folded.make_ascii_lowercase();
    std::str::from_utf8(folded).unwrap_or("")
}

/// A value as it stands on its line.
enum Value<'a> {
    Plain(&'a [u8]),
    Base64 { attribute: &'a str, text: &'a [u8] },
}

impl<'a> Value<'a> {
    fn bytes(&self) -> Result<Cow<'a, [u8]>, EntryError> {
        match self {
            Value::Plain(bytes) => Ok(Cow::Borrowed(bytes)),
            Value::Base64 { attribute, text } => {
                BASE64.decode(text).map(Cow::Owned).map_err(|error| {
                    (
                        Some((*attribute).to_owned()),
                        format!("bad base64: {error}"),
                    )
                })
            }
        }
    }

    /// Attributes the correlation does not use must still be well-formed base64.
    fn check(&self) -> Result<(), EntryError> {
        self.bytes().map(drop)
    }
}

fn split_line(line: &[u8]) -> Result<(&str, Value<'_>), EntryError> {
    let Some(colon) = memchr::memchr(b':', line) else {
        let shown = String::from_utf8_lossy(&line[..line.len().min(40)]).into_owned();
        return Err((None, format!("line {shown:?} has no ':'")));
    };
    let name = std::str::from_utf8(&line[..colon])
        .ok()
        .filter(|name| !name.is_empty() && !name.contains(' '))
        .ok_or_else(|| (None, "an attribute name is empty or not text".to_owned()))?;

    let rest = &line[colon + 1..];
    let value = match rest.first() {
        Some(b':') => Value::Base64 {
            attribute: name,
            text: trim_start(&rest[1..]),
        },
        Some(b'<') => {
            return Err((
                Some(name.to_owned()),
                "URL values (`:<`) are not supported".into(),
            ));
        }
        _ => Value::Plain(trim_start(rest)),
    };
    Ok((name, value))
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let spaces = bytes.iter().take_while(|&&byte| byte == b' ').count();
    &bytes[spaces..]
}

fn text<'a>(name: &str, value: Value<'a>) -> Result<Cow<'a, str>, EntryError> {
    let not_text = || {
        (
            Some(name.to_owned()),
            "the value is not UTF-8 text".to_owned(),
        )
    };
    match value.bytes()? {
        Cow::Borrowed(bytes) => std::str::from_utf8(bytes)
            .map(Cow::Borrowed)
            .map_err(|_| not_text()),
        Cow::Owned(bytes) => String::from_utf8(bytes)
            .map(Cow::Owned)
            .map_err(|_| not_text()),
    }
}

/// Turns a problem with one attribute into an entry error that names it.
fn field(name: &'static str) -> impl Fn(String) -> EntryError {
    move |problem| (Some(name.to_owned()), problem)
}

/// objectGUID is 16 bytes whose first three fields are little-endian (the Windows layout).
fn guid_text(bytes: &[u8]) -> Result<String, EntryError> {
    let bytes: [u8; 16] = bytes.try_into().map_err(|_| {
        (
            Some("objectGUID".into()),
            format!("{} bytes where a GUID has 16", bytes.len()),
        )
    })?;
    Ok(uuid::Uuid::from_bytes_le(bytes).hyphenated().to_string())
}

/// The build in `operatingSystemVersion`: `10.0 (19045)` gives 19045. A version without one
/// gives `None`, which the policy treats as an unknown build.
pub fn os_build(version: &str) -> Option<i64> {
    let open = version.find('(')?;
    let close = open + version[open..].find(')')?;
    version[open + 1..close].trim().parse().ok()
}

#[derive(Default)]
struct ComputerColumns {
    dn: StringBuilder,
    dn_norm: StringBuilder,
    domain: StringBuilder,
    cn: StringBuilder,
    sam_account_name: StringBuilder,
    dns_host_name: StringBuilder,
    os: StringBuilder,
    os_version: StringBuilder,
    os_build: Int64Builder,
    object_guid: StringBuilder,
    managed_by: StringBuilder,
    managed_by_norm: StringBuilder,
    user_account_control: Int64Builder,
    when_changed: TimestampMillisecondBuilder,
    last_logon_at: TimestampMillisecondBuilder,
}

impl ComputerColumns {
    /// `names` is the canonical DN, the domain and the first RDN's value, from one parse.
    fn append(
        &mut self,
        entry: &Entry<'_>,
        (dn_norm, domain, first_value): (&str, Option<&str>, Option<String>),
        guid: Option<String>,
    ) -> Result<(), EntryError> {
        // Every fallible conversion comes first, so a rejected entry leaves no partial row.
        let when_changed = match entry.when_changed.as_deref() {
            Some(text) => Some(time::parse_generalized(text).map_err(field("whenChanged"))?),
            None => None,
        };
        let last_logon_at = match entry.last_logon_timestamp.as_deref() {
            Some(text) => time::parse_filetime(text).map_err(field("lastLogonTimestamp"))?,
            None => None,
        };
        let user_account_control = match entry.user_account_control.as_deref() {
            Some(text) => Some(text.trim().parse::<i64>().map_err(|_| {
                (
                    Some("userAccountControl".into()),
                    format!("{text:?} is not a number"),
                )
            })?),
            None => None,
        };
        let managed_by_norm = match entry.managed_by.as_deref() {
            Some(managed_by) => Some(dn::normalize(managed_by).map_err(field("managedBy"))?),
            None => None,
        };
        let cn = entry.cn.clone().map(Cow::into_owned).or(first_value);

        self.dn.append_value(&entry.dn);
        self.dn_norm.append_value(dn_norm);
        self.domain.append_option(domain);
        self.cn.append_option(cn);
        self.sam_account_name
            .append_option(entry.sam_account_name.as_deref());
        self.dns_host_name
            .append_option(entry.dns_host_name.as_deref());
        self.os.append_option(entry.os.as_deref());
        self.os_version.append_option(entry.os_version.as_deref());
        self.os_build
            .append_option(entry.os_version.as_deref().and_then(os_build));
        self.object_guid.append_option(guid);
        self.managed_by.append_option(entry.managed_by.as_deref());
        self.managed_by_norm.append_option(managed_by_norm);
        self.user_account_control
            .append_option(user_account_control);
        self.when_changed.append_option(when_changed);
        self.last_logon_at.append_option(last_logon_at);
        Ok(())
    }

    fn finish(mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.dn.finish()),
            Arc::new(self.dn_norm.finish()),
            Arc::new(self.domain.finish()),
            Arc::new(self.cn.finish()),
            Arc::new(self.sam_account_name.finish()),
            Arc::new(self.dns_host_name.finish()),
            Arc::new(self.os.finish()),
            Arc::new(self.os_version.finish()),
            Arc::new(self.os_build.finish()),
            Arc::new(self.object_guid.finish()),
            Arc::new(self.managed_by.finish()),
            Arc::new(self.managed_by_norm.finish()),
            Arc::new(self.user_account_control.finish()),
            Arc::new(self.when_changed.finish().with_timezone("UTC")),
            Arc::new(self.last_logon_at.finish().with_timezone("UTC")),
        ];
        RecordBatch::try_new(schema::computers(), columns)
            .expect("computer columns follow schema::computers")
    }
}

#[derive(Default)]
struct UserColumns {
    dn: StringBuilder,
    dn_norm: StringBuilder,
    domain: StringBuilder,
    sam_account_name: StringBuilder,
    user_principal_name: StringBuilder,
    object_guid: StringBuilder,
}

impl UserColumns {
    fn append(
        &mut self,
        entry: &Entry<'_>,
        dn_norm: &str,
        domain: Option<&str>,
        guid: Option<String>,
    ) {
        self.dn.append_value(&entry.dn);
        self.dn_norm.append_value(dn_norm);
        self.domain.append_option(domain);
        self.sam_account_name
            .append_option(entry.sam_account_name.as_deref());
        self.user_principal_name
            .append_option(entry.user_principal_name.as_deref());
        self.object_guid.append_option(guid);
    }

    fn finish(mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.dn.finish()),
            Arc::new(self.dn_norm.finish()),
            Arc::new(self.domain.finish()),
            Arc::new(self.sam_account_name.finish()),
            Arc::new(self.user_principal_name.finish()),
            Arc::new(self.object_guid.finish()),
        ];
        RecordBatch::try_new(schema::users(), columns).expect("user columns follow schema::users")
    }
}

#[derive(Default)]
struct GroupColumns {
    dn: StringBuilder,
    dn_norm: StringBuilder,
    domain: StringBuilder,
    cn: StringBuilder,
    object_guid: StringBuilder,
}

impl GroupColumns {
    fn append(
        &mut self,
        entry: &Entry<'_>,
        dn_norm: &str,
        domain: Option<&str>,
        guid: Option<String>,
    ) {
        self.dn.append_value(&entry.dn);
        self.dn_norm.append_value(dn_norm);
        self.domain.append_option(domain);
        self.cn.append_option(entry.cn.as_deref());
        self.object_guid.append_option(guid);
    }

    fn finish(mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.dn.finish()),
            Arc::new(self.dn_norm.finish()),
            Arc::new(self.domain.finish()),
            Arc::new(self.cn.finish()),
            Arc::new(self.object_guid.finish()),
        ];
        RecordBatch::try_new(schema::groups(), columns)
            .expect("group columns follow schema::groups")
    }
}

#[derive(Default)]
struct MembershipColumns {
    group_dn_norm: StringBuilder,
    member_dn_norm: StringBuilder,
}

impl MembershipColumns {
    fn finish(mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.group_dn_norm.finish()),
            Arc::new(self.member_dn_norm.finish()),
        ];
        RecordBatch::try_new(schema::memberships(), columns)
            .expect("membership columns follow schema::memberships")
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Int64Type, TimestampMillisecondType};

    use super::*;

    fn read_text(text: &'static str) -> DirectoryInput {
        read(&[Source::Embedded {
            name: "corp.ldif",
            bytes: text.as_bytes(),
        }])
        .unwrap()
    }

    fn strings(batches: &[RecordBatch], column: &str) -> Vec<Option<String>> {
        batches
            .iter()
            .flat_map(|batch| {
                let array = batch.column_by_name(column).unwrap().as_string::<i32>();
                (0..array.len())
                    .map(|i| array.is_valid(i).then(|| array.value(i).to_owned()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    const EXPORT: &str = "version: 1

# A computer in the Disabled OU, with a folded DN and a binary GUID.
dn: CN=LAPTOP-FINANCE01,OU=Disabled Computers,DC=corp,DC=exam
 ple,DC=test
objectClass: top
objectClass: person
objectClass: organizationalPerson
objectClass: user
objectClass: computer
cn: LAPTOP-FINANCE01
sAMAccountName: LAPTOP-FINANCE0$
dNSHostName: laptop-finance01.corp.example.test
operatingSystem: Windows 10 Enterprise
operatingSystemVersion: 10.0 (19045)
objectGUID:: kqBLfsYYL02zNVoOnB0vhA==
whenChanged: 20261104101500.0Z
lastLogonTimestamp: 134405568000000000
userAccountControl: 4098
managedBy: CN=Novak\\, Jana,OU=Users,DC=corp,DC=example,DC=test

dn:: Q049Tm92YWtcLCBKYW5hLE9VPVVzZXJzLERDPWNvcnAsREM9ZXhhbXBsZSxEQz10ZXN0
objectClass: user
sAMAccountName: jnovak
userPrincipalName: jnovak@corp.example.test
memberOf: CN=Finance Leads,OU=Groups,DC=corp,DC=example,DC=test

dn: CN=VIP Users,OU=Groups,DC=corp,DC=example,DC=test
objectClass: group
cn: VIP Users
member: CN=Finance Leads,OU=Groups,DC=corp,DC=example,DC=test
member: CN=Board,OU=Groups,DC=corp,DC=example,DC=test

dn: OU=Groups,DC=corp,DC=example,DC=test
objectClass: organizationalUnit
";

    #[test]
    fn reads_computers_users_groups_and_memberships() {
        let input = read_text(EXPORT);
        assert!(input.rejects.is_empty(), "{:?}", input.rejects);
        assert_eq!((input.entries, input.passed_over), (4, 1));

        let computer = &input.computers[0];
        assert_eq!(computer.num_rows(), 1);
        assert_eq!(
            strings(&input.computers, "dn_norm")[0].as_deref(),
            Some("cn=laptop-finance01,ou=disabled computers,dc=corp,dc=example,dc=test")
        );
        assert_eq!(
            strings(&input.computers, "domain")[0].as_deref(),
            Some("corp.example.test")
        );
        assert_eq!(
            strings(&input.computers, "object_guid")[0].as_deref(),
            Some("7e4ba092-18c6-4d2f-b335-5a0e9c1d2f84")
        );
        let build = computer
            .column_by_name("os_build")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert_eq!(build.value(0), 19045);
        let logon = computer.column_by_name("last_logon_at").unwrap();
        assert_eq!(
            logon.as_primitive::<TimestampMillisecondType>().value(0),
            1_796_083_200_000
        );
        assert_eq!(
            strings(&input.computers, "managed_by_norm")[0].as_deref(),
            Some(r"cn=novak\2c jana,ou=users,dc=corp,dc=example,dc=test")
        );

        // The base64 DN decodes to the escaped comma form, and so meets the managedBy above.
        assert_eq!(
            strings(&input.users, "dn_norm"),
            strings(&input.computers, "managed_by_norm")
        );

        let groups = strings(&input.memberships, "group_dn_norm");
        let members = strings(&input.memberships, "member_dn_norm");
        let pairs: Vec<(String, String)> = groups
            .into_iter()
            .zip(members)
            .map(|(g, m)| (g.unwrap(), m.unwrap()))
            .collect();
        assert_eq!(pairs.len(), 3);
        assert!(pairs.contains(&(
            "cn=finance leads,ou=groups,dc=corp,dc=example,dc=test".into(),
            r"cn=novak\2c jana,ou=users,dc=corp,dc=example,dc=test".into()
        )));
        assert!(pairs.contains(&(
            "cn=vip users,ou=groups,dc=corp,dc=example,dc=test".into(),
            "cn=board,ou=groups,dc=corp,dc=example,dc=test".into()
        )));
    }

    #[test]
    fn crlf_and_no_version_line_read_the_same() {
        let crlf: &'static str = Box::leak(EXPORT.replace('\n', "\r\n").into_boxed_str());
        let input = read_text(crlf);
        assert!(input.rejects.is_empty(), "{:?}", input.rejects);
        assert_eq!(
            strings(&input.computers, "cn")[0].as_deref(),
            Some("LAPTOP-FINANCE01")
        );
        assert_eq!(input.entries, 4);
    }

    #[test]
    fn bad_entries_are_rejected_with_line_and_attribute() {
        let input = read_text(
            "dn: CN=WS-1,DC=corp,DC=test
objectClass: computer
objectGUID:: AAEC

dn: CN=WS-2,DC=corp,DC=test
objectClass: computer
whenChanged: yesterday

dn: CN=WS-3,DC=corp,DC=test
objectClass: computer
operatingSystem:: !!!

cn: no-dn-here

dn: CN=WS-4,DC=corp,DC=test
objectClass: computer
cn: WS-4
",
        );

        assert_eq!(
            strings(&input.computers, "cn"),
            vec![Some("WS-4".to_owned())]
        );
        let rejects: Vec<_> = input.rejects.iter().map(ToString::to_string).collect();
        assert_eq!(
            rejects,
            vec![
                "corp.ldif: entry at line 1: field objectGUID: 3 bytes where a GUID has 16",
                "corp.ldif: entry at line 5: field whenChanged: \"yesterday\" is not LDAP \
                 Generalized Time (YYYYMMDDHHMMSS.0Z)",
                "corp.ldif: entry at line 9: field operatingSystem: bad base64: Invalid symbol \
                 33, offset 0.",
                "corp.ldif: entry at line 13: the entry starts with \"cn\", not with dn",
            ]
        );
        assert!(
            input.rejects[0]
                .raw
                .as_deref()
                .unwrap()
                .contains("objectGUID:: AAEC")
        );
    }

    #[test]
    fn blocks_end_on_entry_boundaries() {
        assert_eq!(last_entry_boundary(b"dn: a\n\ndn: b\n"), Some(7));
        assert_eq!(last_entry_boundary(b"dn: a\r\n\r\ndn: b"), Some(9));
        assert_eq!(last_entry_boundary(b"dn: a\ncn: b\n"), None);
    }

    #[test]
    fn build_comes_from_the_parenthesis() {
        assert_eq!(os_build("10.0 (19045)"), Some(19045));
        assert_eq!(os_build("6.3 (9600)"), Some(9600));
        assert_eq!(os_build("10.0"), None);
        assert_eq!(os_build("10.0 (n/a)"), None);
    }
}
