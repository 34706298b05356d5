"""machine.py reads the CPU from /proc/cpuinfo's text: the kinds this project meets, told apart by their
vendor, family and flags, and what each computes per cycle."""

from pathlib import Path

import pytest

from resnet_repro.machine import Cpu, nominal_peak, parse_cpuinfo, read_cpu


def cpuinfo(name: str, family: int, model: int, flags: str, processors: int = 2, vendor: str = "") -> str:
    """A /proc/cpuinfo text as Linux writes it on x86: one block per logical processor, all alike."""
    vendor = vendor or ("GenuineIntel" if name.startswith("Intel") else "AuthenticAMD")
    block = (
        "processor\t: {i}\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\n"
        "model name\t: {name}\nstepping\t: 1\ncpu MHz\t\t: 2450.000\ncache size\t: 512 KB\n"
        "flags\t\t: {flags}\nbogomips\t: 4900.00\n\n"
    )
    fields = {"vendor": vendor, "family": family, "model": model, "name": name, "flags": flags}
    return "".join(block.format(i=i, **fields) for i in range(processors))


BASE = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx"
ZEN3 = cpuinfo(
    "AMD EPYC 7B13",
    25,
    1,
    BASE + " pni pclmulqdq ssse3 fma cx16 sse4_1 sse4_2 movbe popcnt aes xsave avx "
    "f16c rdrand hypervisor lahf_lm cmp_legacy abm sse4a misalignsse 3dnowprefetch bmi1 avx2 smep bmi2 "
    "erms invpcid rdseed adx smap clflushopt clwb sha_ni xsaveopt xsavec xgetbv1 clzero vaes vpclmulqdq",
)
ZEN4 = cpuinfo(
    "AMD EPYC 9B14",
    25,
    17,
    BASE + " pni pclmulqdq ssse3 fma cx16 sse4_1 sse4_2 movbe popcnt aes xsave "
    "avx f16c rdrand hypervisor bmi1 avx2 smep bmi2 erms avx512f avx512dq rdseed adx smap avx512ifma "
    "clflushopt clwb avx512cd sha_ni avx512bw avx512vl xsaveopt avx512_bf16 avx512vbmi avx512_vbmi2 gfni "
    "vaes vpclmulqdq avx512_vnni avx512_bitalg avx512_vpopcntdq",
)
ZEN5 = cpuinfo(
    "AMD EPYC",
    26,
    2,
    BASE + " pni pclmulqdq ssse3 fma cx16 sse4_1 sse4_2 movbe popcnt aes xsave avx f16c rdrand hypervisor "
    "bmi1 avx2 smep bmi2 erms avx512f avx512dq adx smap avx512ifma clflushopt clwb avx512cd sha_ni avx512bw "
    "avx512vl xsaveopt avx_vnni avx512_bf16 avx512vbmi avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni",
)
CASCADE_LAKE = cpuinfo(
    "Intel(R) Xeon(R) CPU @ 2.80GHz",
    6,
    85,
    BASE + " pni pclmulqdq ssse3 fma cx16 pcid sse4_1 "
    "sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand hypervisor lahf_lm abm 3dnowprefetch "
    "fsgsbase bmi1 hle avx2 smep bmi2 erms invpcid rtm mpx avx512f avx512dq rdseed adx smap "
    "clflushopt clwb avx512cd avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves arat avx512_vnni",
)


def test_zen3_is_avx2_only():
    cpu = parse_cpuinfo(ZEN3)
    assert (cpu.name, cpu.family, cpu.model) == ("AMD EPYC 7B13", "25", "1")
    assert cpu.simd == ("avx", "avx2") and not cpu.avx512 and not cpu.native_bf16
    assert cpu.describe() == "AMD EPYC 7B13 (family 25 model 1)"


def test_zen4_has_avx512_and_native_bf16():
    cpu = parse_cpuinfo(ZEN4)
    assert (cpu.family, cpu.model) == ("25", "17")
    assert cpu.avx512 and cpu.native_bf16 and "avx512_bf16" in cpu.simd
    assert cpu.describe() == "AMD EPYC 9B14 (family 25 model 17, AVX-512, native bf16)"


def test_cascade_lake_has_avx512_without_bf16():
    cpu = parse_cpuinfo(CASCADE_LAKE)
    assert (cpu.family, cpu.model) == ("6", "85")
    assert cpu.avx512 and not cpu.native_bf16
    assert cpu.simd == ("avx", "avx2", "avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl", "avx512_vnni")
    assert cpu.describe() == "Intel(R) Xeon(R) CPU @ 2.80GHz (family 6 model 85, AVX-512)"


def test_the_first_processor_is_read_and_a_missing_cpuinfo_is_an_empty_cpu(tmp_path: Path):
    # Mixed blocks do not occur on one machine; they show which block is read.
    assert parse_cpuinfo(ZEN3 + CASCADE_LAKE).name == "AMD EPYC 7B13"
    (tmp_path / "cpuinfo").write_text(ZEN4)
    assert read_cpu(tmp_path / "cpuinfo") == parse_cpuinfo(ZEN4)
    empty = read_cpu(tmp_path / "missing")
    assert empty == Cpu(None, None, None, ()) and not empty.native_bf16
    assert empty.describe()  # the platform's name, without the details cpuinfo would give


@pytest.mark.parametrize(
    ("text", "kind", "flops_per_cycle", "bf16_factor"),
    [
        (ZEN3, "f25m1", 32, 1),  # AVX2: two 256-bit FMA units; bf16 without AVX512-BF16 runs at the fp32 rate
        (ZEN4, "f25m17", 32, 2),  # AVX-512 flags, but on the same two 256-bit units: not 64
        (ZEN5, "f26m2", 64, 2),  # a full 512-bit datapath
        (CASCADE_LAKE, "f6m85", 64, 1),  # two AVX-512 FMA units (Gold 6xxx/Platinum), no bf16 instructions
    ],
)
def test_the_peak_of_each_cpu_kind_is_cores_x_clock_x_fma_units_x_lanes_x_2(text, kind, flops_per_cycle, bf16_factor):
    cpu = parse_cpuinfo(text)
    assert cpu.kind == kind and cpu.mhz == 2450.0
    assert cpu.vector_units.fp32_flops_per_cycle == flops_per_cycle
    assert "by flags" not in cpu.vector_units.basis  # each of these kinds is in the table
    fp32, bf16 = nominal_peak(cpu, 2, "fp32"), nominal_peak(cpu, 2, "bf16")
    assert fp32.gflops == pytest.approx(2 * 2.45 * flops_per_cycle)
    assert bf16.gflops == pytest.approx(bf16_factor * fp32.gflops)
    assert f"2 cores x 2.450 GHz nominal x {flops_per_cycle} fp32 FLOP/cycle" in fp32.how
    assert fp32.how.endswith(f"= {fp32.gflops:.0f} GFLOP/s fp32")
    assert ("vdpbf16ps" in bf16.how) == (bf16_factor == 2)


def test_a_cpu_the_table_does_not_know_is_judged_by_its_widest_simd_flags():
    def units(flags: str, vendor: str = "HygonGenuine"):
        return Cpu("some CPU", "24", "1", tuple(flags.split()), vendor).vector_units

    assert units("sse2 avx avx2 fma avx512f").fp32_flops_per_cycle == 64
    assert units("sse2 avx avx2 fma").fp32_flops_per_cycle == 32
    assert units("sse2 avx avx2").fp32_flops_per_cycle == 8  # AVX2 without FMA
    assert units("sse2").fp32_flops_per_cycle == 8
    assert units("avx2 fma avx512f").basis.startswith("by flags: avx512f")
    # An Intel CPU of family 6 without AVX-512 is not the table's AVX-512 entry.
    assert units("avx2 fma", "GenuineIntel").fp32_flops_per_cycle == 32


def test_without_a_clock_there_is_no_peak_only_how_far_it_got():
    cpu = Cpu("AMD EPYC", "25", "1", ("avx2", "fma"), "AuthenticAMD")
    peak = nominal_peak(cpu, 2, "fp32")
    assert peak.gflops is None and "clock unknown" in peak.how and "32 fp32 FLOP/cycle" in peak.how
    assert nominal_peak(parse_cpuinfo(ZEN5), 2, "fp16").gflops is None  # a GPU's arithmetic: not modelled
    assert Cpu(None, None, None, ()).kind is None
