"""machine.py reads the CPU from /proc/cpuinfo's text: the kinds this project meets, told apart by their flags."""

from pathlib import Path

from resnet_repro.machine import Cpu, parse_cpuinfo, read_cpu


def cpuinfo(name: str, family: int, model: int, flags: str, processors: int = 2) -> str:
    """A /proc/cpuinfo text as Linux writes it on x86: one block per logical processor, all alike."""
    block = (
        "processor\t: {i}\ncpu family\t: {family}\nmodel\t\t: {model}\n"
        "model name\t: {name}\nstepping\t: 1\ncpu MHz\t\t: 2450.000\ncache size\t: 512 KB\n"
        "flags\t\t: {flags}\nbogomips\t: 4900.00\n\n"
    )
    return "".join(block.format(i=i, family=family, model=model, name=name, flags=flags) for i in range(processors))


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
