//! Seccomp: our own compiler from the OCI `linux.seccomp` section to a classic BPF program,
//! loaded with seccomp(2). No libseccomp and no seccompiler: the filter is a straight list of
//! checks (one block per syscall name), which Docker's default profile keeps well under the
//! kernel's 4096-instruction limit.
//!
//! Semantics (libseccomp's, as runc uses them):
//! - the program first checks the architecture: only the native one is accepted (x86_64;
//!   x32 syscall numbers and foreign architectures such as i386 are killed);
//! - rules whose action equals the default action are dropped;
//! - rules are tried most restrictive action first (kill, trap, errno, trace, log, allow),
//!   in file order within an action; a rule matches when the syscall number matches and every
//!   `args` condition holds (64-bit comparisons, `SCMP_CMP_MASKED_EQ` is
//!   `(arg & value) == valueTwo`); the first match decides, otherwise the default action;
//! - syscall names unknown on this architecture are skipped, as runc does.

use crate::error::{Error, Result};
use crate::spec::{Seccomp, SeccompArg};

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}

const LD_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
#[allow(dead_code)]
const JA: u16 = 0x05;
const JEQ: u16 = 0x15;
const JGT: u16 = 0x25;
const JGE: u16 = 0x35;
const AND: u16 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const RET: u16 = 0x06;

pub const RET_KILL_PROCESS: u32 = 0x8000_0000;
pub const RET_KILL_THREAD: u32 = 0;
pub const RET_TRAP: u32 = 0x0003_0000;
pub const RET_ERRNO: u32 = 0x0005_0000;
pub const RET_TRACE: u32 = 0x7ff0_0000;
pub const RET_LOG: u32 = 0x7ffc_0000;
pub const RET_ALLOW: u32 = 0x7fff_0000;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const AUDIT_ARCH: u32 = 0;

const X32_BIT: u32 = 0x4000_0000;

pub fn syscall_number(name: &str) -> Option<i64> {
    crate::syscall_table::TABLE.iter().find(|(n, _)| *n == name).map(|(_, nr)| *nr)
}

/// Action string → SECCOMP_RET_* value.
pub fn action(name: &str, errno: Option<u32>, default_errno: u32) -> Result<u32> {
    Ok(match name {
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => RET_KILL_THREAD,
        "SCMP_ACT_KILL_PROCESS" => RET_KILL_PROCESS,
        "SCMP_ACT_TRAP" => RET_TRAP,
        "SCMP_ACT_ERRNO" => RET_ERRNO | (errno.unwrap_or(default_errno) & 0xffff),
        "SCMP_ACT_TRACE" => RET_TRACE | (errno.unwrap_or(default_errno) & 0xffff),
        "SCMP_ACT_LOG" => RET_LOG,
        "SCMP_ACT_ALLOW" => RET_ALLOW,
        other => return Err(Error::msg(format!("seccomp action {other:?} is not supported"))),
    })
}

/// Lower is more restrictive (tried first).
fn rank(ret: u32) -> u8 {
    match ret & 0xffff_0000 {
        RET_KILL_PROCESS => 0,
        RET_KILL_THREAD => 1,
        RET_TRAP => 2,
        RET_ERRNO => 3,
        RET_TRACE => 4,
        RET_LOG => 5,
        _ => 6,
    }
}

#[derive(Clone, Copy)]
enum T {
    Next,
    L(usize),
}

struct Ins {
    code: u16,
    jt: T,
    jf: T,
    k: u32,
    /// For JA: the label the `k` offset points at.
    ja: Option<usize>,
}

#[derive(Default)]
struct Asm {
    ins: Vec<Ins>,
    labels: Vec<usize>,
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels.push(usize::MAX);
        self.labels.len() - 1
    }
    fn bind(&mut self, l: usize) {
        self.labels[l] = self.ins.len();
    }
    fn op(&mut self, code: u16, k: u32) {
        self.ins.push(Ins { code, jt: T::Next, jf: T::Next, k, ja: None });
    }
    fn jmp(&mut self, code: u16, k: u32, jt: T, jf: T) {
        self.ins.push(Ins { code, jt, jf, k, ja: None });
    }
    #[allow(dead_code)]
    fn ja(&mut self, l: usize) {
        self.ins.push(Ins { code: JA, jt: T::Next, jf: T::Next, k: 0, ja: Some(l) });
    }
    fn finish(self) -> Result<Vec<SockFilter>> {
        let mut out = Vec::with_capacity(self.ins.len());
        for (i, ins) in self.ins.iter().enumerate() {
            let off = |t: T| -> Result<u8> {
                match t {
                    T::Next => Ok(0),
                    T::L(l) => u8::try_from(self.labels[l] - i - 1).map_err(|_| Error::msg("seccomp: jump too far")),
                }
            };
            let k = match ins.ja {
                Some(l) => (self.labels[l] - i - 1) as u32,
                None => ins.k,
            };
            out.push(SockFilter { code: ins.code, jt: off(ins.jt)?, jf: off(ins.jf)?, k });
        }
        if out.len() > 4096 {
            return Err(Error::msg(format!("seccomp filter has {} instructions (limit 4096)", out.len())));
        }
        Ok(out)
    }
}

fn arg_check(a: &mut Asm, arg: &SeccompArg, fail: usize) -> Result<()> {
    if arg.index > 5 {
        return Err(Error::msg(format!("seccomp arg index {} out of range", arg.index)));
    }
    let lo_off = 16 + 8 * arg.index;
    let hi_off = lo_off + 4;
    let (vhi, vlo) = ((arg.value >> 32) as u32, arg.value as u32);
    let pass = a.label();
    let f = T::L(fail);
    let p = T::L(pass);
    match arg.op.as_str() {
        "SCMP_CMP_EQ" => {
            a.op(LD_ABS, hi_off);
            a.jmp(JEQ, vhi, T::Next, f);
            a.op(LD_ABS, lo_off);
            a.jmp(JEQ, vlo, T::Next, f);
        }
        "SCMP_CMP_NE" => {
            a.op(LD_ABS, hi_off);
            a.jmp(JEQ, vhi, T::Next, p);
            a.op(LD_ABS, lo_off);
            a.jmp(JEQ, vlo, f, T::Next);
        }
        "SCMP_CMP_GT" | "SCMP_CMP_GE" => {
            a.op(LD_ABS, hi_off);
            a.jmp(JGT, vhi, p, T::Next);
            a.jmp(JEQ, vhi, T::Next, f);
            a.op(LD_ABS, lo_off);
            a.jmp(if arg.op == "SCMP_CMP_GT" { JGT } else { JGE }, vlo, T::Next, f);
        }
        "SCMP_CMP_LT" | "SCMP_CMP_LE" => {
            a.op(LD_ABS, hi_off);
            a.jmp(JGE, vhi, T::Next, p);
            a.jmp(JEQ, vhi, T::Next, f);
            a.op(LD_ABS, lo_off);
            a.jmp(if arg.op == "SCMP_CMP_LT" { JGE } else { JGT }, vlo, f, T::Next);
        }
        "SCMP_CMP_MASKED_EQ" => {
            let (dhi, dlo) = ((arg.value_two >> 32) as u32, arg.value_two as u32);
            a.op(LD_ABS, hi_off);
            a.op(AND, vhi);
            a.jmp(JEQ, dhi, T::Next, f);
            a.op(LD_ABS, lo_off);
            a.op(AND, vlo);
            a.jmp(JEQ, dlo, T::Next, f);
        }
        other => return Err(Error::msg(format!("seccomp operator {other:?} is not supported"))),
    }
    a.bind(pass);
    Ok(())
}

/// Compile a profile to BPF.
pub fn compile(s: &Seccomp) -> Result<Vec<SockFilter>> {
    if AUDIT_ARCH == 0 || crate::syscall_table::TABLE.is_empty() {
        return Err(Error::msg("seccomp is not supported on this architecture"));
    }
    let default_errno = s.default_errno_ret.unwrap_or(libc::EPERM as u32);
    let default = action(&s.default_action, s.default_errno_ret, libc::EPERM as u32)?;
    let mut rules: Vec<(u8, usize, u32, &crate::spec::SyscallRule)> = Vec::new();
    for (i, r) in s.syscalls.iter().enumerate() {
        let act = action(&r.action, r.errno_ret, default_errno)?;
        if act == default {
            continue;
        }
        rules.push((rank(act), i, act, r));
    }
    rules.sort_by_key(|(rank, i, _, _)| (*rank, *i));

    let mut a = Asm::default();
    let arch_ok = a.label();
    a.op(LD_ABS, 4);
    a.jmp(JEQ, AUDIT_ARCH, T::L(arch_ok), T::Next);
    a.op(RET, RET_KILL_PROCESS);
    a.bind(arch_ok);
    a.op(LD_ABS, 0);
    let native = a.label();
    a.jmp(JGE, X32_BIT, T::Next, T::L(native));
    a.op(RET, RET_KILL_PROCESS);
    a.bind(native);
    for (_, _, act, rule) in &rules {
        for name in &rule.names {
            let Some(nr) = syscall_number(name) else { continue };
            if rule.args.is_empty() {
                // A = nr here.
                let skip = a.label();
                a.jmp(JEQ, nr as u32, T::Next, T::L(skip));
                a.op(RET, *act);
                a.bind(skip);
            } else {
                let fail = a.label();
                a.jmp(JEQ, nr as u32, T::Next, T::L(fail));
                for arg in &rule.args {
                    arg_check(&mut a, arg, fail)?;
                }
                a.op(RET, *act);
                a.bind(fail);
                a.op(LD_ABS, 0);
            }
        }
    }
    a.op(RET, default);
    a.finish()
}

/// Load a compiled filter into the calling thread (no_new_privs or CAP_SYS_ADMIN required).
pub fn load(prog: &[SockFilter], flags: &[String]) -> Result<()> {
    let mut f: libc::c_ulong = 0;
    for fl in flags {
        f |= match fl.as_str() {
            "SECCOMP_FILTER_FLAG_TSYNC" => 1,
            "SECCOMP_FILTER_FLAG_LOG" => 2,
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => 4,
            other => return Err(Error::msg(format!("seccomp flag {other:?} is not supported"))),
        };
    }
    let fprog = SockFprog { len: prog.len() as u16, filter: prog.as_ptr() };
    if unsafe { libc::syscall(libc::SYS_seccomp, 1 as libc::c_ulong, f, &fprog as *const SockFprog) } < 0 {
        return Err(Error::last(format!("load seccomp filter ({} instructions)", prog.len()), None));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny BPF interpreter over seccomp_data, enough to check our programs.
    fn run(prog: &[SockFilter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, v) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        let word = |off: u32| u32::from_le_bytes(data[off as usize..off as usize + 4].try_into().unwrap());
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = prog[pc];
            pc += 1;
            match i.code {
                LD_ABS => acc = word(i.k),
                AND => acc &= i.k,
                RET => return i.k,
                JA => pc += i.k as usize,
                JEQ | JGT | JGE => {
                    let c = match i.code {
                        JEQ => acc == i.k,
                        JGT => acc > i.k,
                        _ => acc >= i.k,
                    };
                    pc += if c { i.jt } else { i.jf } as usize;
                }
                c => panic!("unknown op {c:#x}"),
            }
        }
    }

    fn profile(json: &str) -> Seccomp {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn allow_list_and_default_errno() {
        let p = profile(r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"syscalls":[
            {"names":["read","write","nonexistent_call"],"action":"SCMP_ACT_ALLOW"},
            {"names":["clone3"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#);
        let prog = compile(&p).unwrap();
        let nr = |n: &str| syscall_number(n).unwrap() as u32;
        assert_eq!(run(&prog, AUDIT_ARCH, nr("read"), [0; 6]), RET_ALLOW);
        assert_eq!(run(&prog, AUDIT_ARCH, nr("write"), [0; 6]), RET_ALLOW);
        assert_eq!(run(&prog, AUDIT_ARCH, nr("mount"), [0; 6]), RET_ERRNO | 1);
        assert_eq!(run(&prog, AUDIT_ARCH, nr("clone3"), [0; 6]), RET_ERRNO | 38);
        assert_eq!(run(&prog, 0x4000_0003, nr("read"), [0; 6]), RET_KILL_PROCESS);
        assert_eq!(run(&prog, AUDIT_ARCH, nr("read") | X32_BIT, [0; 6]), RET_KILL_PROCESS);
    }

    #[test]
    fn argument_comparisons() {
        let p = profile(r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
            {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]},
            {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":4294967295,"op":"SCMP_CMP_EQ"}]},
            {"names":["clone"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]},
            {"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":40,"op":"SCMP_CMP_NE"}]},
            {"names":["dup"],"action":"SCMP_ACT_ALLOW","args":[{"index":1,"value":4294967296,"op":"SCMP_CMP_GE"},{"index":1,"value":4294967300,"op":"SCMP_CMP_LT"}]},
            {"names":["dup2"],"action":"SCMP_ACT_ALLOW","args":[{"index":2,"value":10,"op":"SCMP_CMP_GT"},{"index":2,"value":12,"op":"SCMP_CMP_LE"}]}]}"#);
        let prog = compile(&p).unwrap();
        let nr = |n: &str| syscall_number(n).unwrap() as u32;
        let eperm = RET_ERRNO | 1;
        let go = |n: &str, a: [u64; 6]| run(&prog, AUDIT_ARCH, nr(n), a);
        assert_eq!(go("personality", [8, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(go("personality", [0xffff_ffff, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(go("personality", [0x1_0000_0008, 0, 0, 0, 0, 0]), eperm);
        assert_eq!(go("personality", [9, 0, 0, 0, 0, 0]), eperm);
        assert_eq!(go("clone", [libc::SIGCHLD as u64 | 0x0100_0000, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(go("clone", [libc::CLONE_NEWNS as u64, 0, 0, 0, 0, 0]), eperm);
        assert_eq!(go("socket", [2, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(go("socket", [40, 0, 0, 0, 0, 0]), eperm);
        assert_eq!(go("socket", [0x1_0000_0028, 0, 0, 0, 0, 0]), RET_ALLOW);
        for (v, want) in [(0xffff_ffffu64, eperm), (0x1_0000_0000, RET_ALLOW), (0x1_0000_0003, RET_ALLOW), (0x1_0000_0004, eperm), (0x2_0000_0000, eperm)] {
            assert_eq!(go("dup", [0, v, 0, 0, 0, 0]), want, "dup {v:#x}");
        }
        for (v, want) in [(10u64, eperm), (11, RET_ALLOW), (12, RET_ALLOW), (13, eperm), (0x1_0000_000b, eperm)] {
            assert_eq!(go("dup2", [0, 0, v, 0, 0, 0]), want, "dup2 {v}");
        }
    }

    #[test]
    fn long_allow_list_fits() {
        let names: Vec<String> = crate::syscall_table::TABLE.iter().map(|(n, _)| n.to_string()).filter(|n| n != "mount").collect();
        let p = Seccomp { default_action: "SCMP_ACT_ERRNO".into(), syscalls: vec![crate::spec::SyscallRule { names, action: "SCMP_ACT_ALLOW".into(), ..Default::default() }], ..Default::default() };
        let prog = compile(&p).unwrap();
        assert!(prog.len() > 600);
        assert_eq!(run(&prog, AUDIT_ARCH, syscall_number("mount").unwrap() as u32, [0; 6]), RET_ERRNO | 1);
        assert_eq!(run(&prog, AUDIT_ARCH, syscall_number("mseal").unwrap() as u32, [0; 6]), RET_ALLOW);
        assert_eq!(run(&prog, 3, 0, [0; 6]), RET_KILL_PROCESS);
    }

    #[test]
    fn stricter_actions_are_tried_first() {
        let p = profile(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["getpid"],"action":"SCMP_ACT_LOG"},
            {"names":["getpid"],"action":"SCMP_ACT_ERRNO","errnoRet":5,"args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#);
        let prog = compile(&p).unwrap();
        let nr = syscall_number("getpid").unwrap() as u32;
        assert_eq!(run(&prog, AUDIT_ARCH, nr, [1, 0, 0, 0, 0, 0]), RET_ERRNO | 5);
        assert_eq!(run(&prog, AUDIT_ARCH, nr, [0; 6]), RET_LOG);
        assert!(compile(&profile(r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#)).is_err());
    }
}
