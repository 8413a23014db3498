"""The one rule for writing sizes (motif_lite/units.py): files in decimal units, memory in binary units."""

from motif_lite.units import GB, MB, GiB, KiB, MiB, file_size, memory_size


def test_file_sizes_in_decimal_units_each_in_the_largest_unit_it_reads_a_tenth_of():
    sizes = [4_700_000_000, GB // 10, 96_000_000, 94_000_000, 12_345_678, MB // 10, 94_000, 40_000, 0]
    assert [file_size(n) for n in sizes] == [
        "4.70 GB", "0.10 GB", "0.10 GB", "94.0 MB", "12.3 MB", "0.1 MB", "0.1 MB", "40.0 kB", "0 GB"
    ]  # fmt: skip


def test_memory_sizes_in_binary_units_each_in_the_largest_unit_it_reads_a_tenth_of():
    # Two decimals of GiB would print a need of 3 MiB against a budget of 1 MiB as 0.00 against 0.00.
    sizes = [6 * GiB, GiB // 8, int(0.1 * GiB), int(0.09 * GiB), 3 * MiB, 200 * KiB, 90 * KiB, 40 * KiB, 0]
    assert [memory_size(n) for n in sizes] == [
        "6.00 GiB", "0.12 GiB", "0.10 GiB", "92.2 MiB", "3.0 MiB", "0.2 MiB", "0.1 MiB", "40.0 KiB", "0 GiB"
    ]  # fmt: skip


def test_a_gigabyte_of_file_is_less_than_a_gibibyte_of_memory():
    assert (file_size(10**9), memory_size(10**9)) == ("1.00 GB", "0.93 GiB")
