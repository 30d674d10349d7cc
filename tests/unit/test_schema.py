"""`data.features: all` is every numeric, text and true/false column of data.source but the target, in file order,
read from the header (Parquet's schema, or a CSV file's header and the types pyarrow infers from its first block)
and, for a text column, its values (a text column of more than data.max_levels levels is left out)."""

import datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet
import pytest

import pipeline.schema as schema
from pipeline.errors import PipelineError
from pipeline.params import MAX_FEATURES, DataParams
from pipeline.schema import resolve_features
from pipeline.split import load_split
from pipeline.terms import BOOL, NUMBER, TEXT

# Text, a date, true/false and an empty column among numbers, the target in the middle.
MIXED_CSV = (
    "city,area,built,rooms,price,sold,street,notes,tax\n"
    "Paris,50.5,2001-02-03,2,100,true,Rue A,,1.5\n"
    "Lyon,70,2002-03-04,,150,false,Rue B,,2\n"
    "Nice,90.25,2003-04-05,3,170,true,Rue C,,NA\n"
)
MIXED_SKIPPED = "skipped 2 columns that are not numbers: 'built' (date32[day]), 'notes' (empty)"


@pytest.fixture(autouse=True)
def in_a_folder(tmp_path, monkeypatch):
    """data.source is a path inside the repository: here, the test's own folder."""
    monkeypatch.chdir(tmp_path)


def data_params(source: Path, features="all", target: str = "price", degree: int = 1) -> DataParams:
    return DataParams(source=str(source), features=features, target=target, missing="error", degree=degree,
                      test_fraction=0.0, split_seed=0, max_levels=50)


def write_parquet(path: Path, columns: dict[str, pa.Array]) -> Path:
    pyarrow.parquet.write_table(pa.table(columns), path)
    return path


def refused(data: DataParams) -> str:
    with pytest.raises(PipelineError) as caught:
        resolve_features(data)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_all_in_a_csv_is_its_numeric_text_and_true_false_columns_in_file_order_without_the_target(tmp_path):
    source = Path("houses.csv")
    source.write_text(MIXED_CSV)
    resolved = resolve_features(data_params(source, degree=2))
    assert resolved.data.features == ["city", "area", "rooms", "sold", "street", "tax"]
    assert resolved.note == f"{source}: data.features = all: {MIXED_SKIPPED}"
    # Everything else is as written.
    assert resolved.data.model_dump(exclude={"features"}) == data_params(source, degree=2).model_dump(
        exclude={"features"})


def test_all_in_a_parquet_file_follows_its_schema(tmp_path):
    source = write_parquet(Path("houses.parquet"), {
        "id": pa.array([1, 2, 3], pa.int32()),
        "city": pa.array(["Paris", "Lyon", "Nice"]),
        "price": pa.array([100.0, 150.0, 170.0]),
        "sold": pa.array([True, False, True]),
        "when": pa.array([datetime.datetime(2024, 1, day) for day in (1, 2, 3)], pa.timestamp("ms")),
        "area": pa.array([50.5, 70.0, 90.25], pa.float32()),
        "tax": pa.array([Decimal("1.50"), Decimal("2.00"), Decimal("2.25")], pa.decimal128(5, 2)),
        "small": pa.array([1, 0, 1], pa.uint8()),
    })
    resolved = resolve_features(data_params(source))
    assert resolved.data.features == ["id", "city", "sold", "area", "tax", "small"]
    assert resolved.note == (f"{source}: data.features = all: skipped 1 column that is not numbers: "
                             "'when' (timestamp[ms])")


def test_text_columns_are_factors_but_one_of_more_levels_than_max_levels(tmp_path):
    source = Path("houses.csv")
    source.write_text("city,area,street,price\nParis,50,Rue A,100\nLyon,70,Rue B,150\nLyon,60,Rue C,120\n")
    resolved = resolve_features(data_params(source).model_copy(update={"max_levels": 2}))
    assert resolved.data.features == ["city", "area"]
    assert resolved.note == (f"{source}: data.features = all: left out 'street', a text column of 3 levels (more "
                             "than data.max_levels = 2: an identifier? name it in data.features to fit it)")


def test_nothing_skipped_says_nothing_and_a_list_is_left_as_it_is(tmp_path):
    source = Path("points.csv")
    source.write_text("x1,x2,price\n1,2,3\n4,5,7\n")
    assert resolve_features(data_params(source)).note == ""
    assert resolve_features(data_params(source)).data.features == ["x1", "x2"]
    listed = data_params(source, features=["x2"])
    assert resolve_features(listed).data is listed


def test_a_list_of_all_is_a_column_named_all(tmp_path):
    source = Path("points.csv")
    source.write_text("all,x,price\n1,2,3\n4,5,7\n")
    data = data_params(source, features=["all"])
    assert resolve_features(data).data.features == ["all"]
    assert data.columns == ("all",)


def test_the_many_skipped_columns_of_a_wide_table_stay_one_short_line(tmp_path):
    source = Path("wide.csv")
    names = [f"day{i}" for i in range(30)]
    source.write_text(",".join([*names, "x", "price"]) + "\n" + ",".join(["2001-02-03"] * 30 + ["1", "2"]) + "\n")
    note = resolve_features(data_params(source)).note
    assert note.endswith("skipped 30 columns that are not numbers: " + ", ".join(
        f"{name!r} (date32[day])" for name in names[:10]) + " and 20 more")


def test_exactly_the_most_features_are_accepted(tmp_path):
    source = Path("wide.csv")
    names = [f"x{i}" for i in range(MAX_FEATURES)]
    source.write_text(",".join([*names, "price"]) + "\n" + ",".join(["1"] * (MAX_FEATURES + 1)) + "\n")
    assert MAX_FEATURES == 1000
    assert resolve_features(data_params(source)).data.features == names


def test_more_numeric_columns_than_the_most_features_is_one_line_naming_data_features_and_the_file(tmp_path):
    source = Path("wide.csv")
    names = [f"x{i}" for i in range(MAX_FEATURES + 1)]
    source.write_text(",".join(["city", *names, "price"]) + "\n" + ",".join(["a"] + ["1"] * (MAX_FEATURES + 2)) + "\n")
    assert refused(data_params(source)) == (
        f"{source}: data.features = all: 1002 columns besides the target 'price': expected at most 1000 "
        "(list the ones to fit in data.features)")


def test_no_numeric_column_but_the_target_is_one_line_naming_what_was_found(tmp_path):
    source = Path("names.csv")
    source.write_text("day,price\n2001-02-03,100\n2001-02-04,150\n")
    assert refused(data_params(source)) == (
        f"{source}: data.features = all: no numeric, text or true/false column besides the target 'price' "
        "(1 column that is not numbers: 'day' (date32[day])): expected at least one column to fit")
    only_target = write_parquet(Path("only.parquet"), {"price": pa.array([1.0, 2.0])})
    assert refused(data_params(only_target)) == (
        f"{only_target}: data.features = all: no numeric, text or true/false column besides the target 'price': "
        "expected at least one column to fit")


def test_the_target_missing_is_todays_line_with_did_you_mean(tmp_path):
    source = Path("houses.csv")
    source.write_text("area,prices\n1,2\n3,4\n")
    assert refused(data_params(source)) == (
        f"{source}: column 'price' is missing (did you mean 'prices'?): expected one of the columns area, prices")


def test_a_numeric_column_with_a_name_the_metrics_use_is_refused(tmp_path):
    source = Path("log.csv")
    source.write_text("epoch,x,price\n1,2,3\n2,5,7\n")
    assert refused(data_params(source)) == (
        f"{source}: data.features = all: column 'epoch' has a name the history and metrics use for themselves: "
        "expected none of intercept, epoch, train_loss, test_loss (rename it, or list data.features)")


def test_a_numeric_column_twice_in_the_header_is_refused(tmp_path):
    source = Path("twice.csv")
    source.write_text("x,x,price\n1,2,3\n2,5,7\n")
    assert refused(data_params(source)) == (
        f"{source}: column 'x' appears 2 times in the header: expected one column of that name")


def test_a_missing_or_broken_file_is_the_readers_line(tmp_path):
    assert refused(data_params(Path("nowhere.csv"))).startswith("nowhere.csv: not found: expected a CSV or Parquet file")
    Path("broken.parquet").write_bytes(b"PAR1 and then nothing")
    assert refused(data_params(Path("broken.parquet"))).startswith("broken.parquet: not a readable Parquet file (")


def test_columns_of_an_unresolved_all_says_to_resolve_it_first(tmp_path):
    with pytest.raises(ValueError, match="resolve it first"):
        data_params(Path("points.csv")).columns


@pytest.mark.parametrize("size", ["2.5", "2,5"], ids=["numbers", "a decimal comma"])
def test_resolving_all_keeps_the_kinds_load_split_needs_so_a_csvs_text_columns_are_read_once(monkeypatch, size):
    """A factor, true/false and a column of numbers, once with a typo ("2,5": numbers as text, which the reader
    names, not a factor): the kinds found on the way are column_kinds's, and loading the split reads no text again."""
    source = Path("houses.csv")
    rows = [(50, "north", size, "true", 100), (70, "south", "3", "false", 150), (90, "north", "2.75", "true", 170),
            (60, "east", "4", "false", 130), *((40 + k, "south", str(k), "true", 90 + 7 * k) for k in range(6))]
    source.write_text("area,region,size,sold,price\n" + "".join(f'{a},{r},"{s}",{b},{p}\n' for a, r, s, b, p in rows))
    reads = []
    real_text_cells = schema.text_cells
    monkeypatch.setattr(schema, "text_cells", lambda path, names: reads.append(list(names)) or real_text_cells(path, names))
    resolved = resolve_features(data_params(source))
    text_read = [["region"]] if size == "2.5" else [["region", "size"]]
    assert reads == text_read
    found_again = schema.column_kinds(source, resolved.data.features)
    assert {name: resolved.kinds[name] for name in resolved.data.features} == {
        name: found_again[name] for name in resolved.data.features} == {
        "area": NUMBER, "region": TEXT, "size": NUMBER, "sold": BOOL}
    reads.clear()
    if size == "2.5":
        split = load_split(resolved.data, fit_intercept=True, kinds=resolved.kinds)
        assert split.columns == ("region[T.north]", "region[T.south]", "sold[T.True]", "area", "size")
    else:
        with pytest.raises(PipelineError, match="holds '2,5': expected a number"):
            load_split(resolved.data, fit_intercept=True, kinds=resolved.kinds)
    assert reads == []  # the text columns are not read again
