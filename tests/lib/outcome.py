"""The test output protocol of tests/run: PASS name / FAIL name: why / SKIP name: why.
FAILED lists the names that failed (a test keeps its work files when it is not empty)."""

FAILED: list[str] = []


def report(ok: bool | None, name: str, why: str = "") -> None:
    """ok None: skipped, with why as the reason."""
    if ok is False:
        FAILED.append(name)
    if ok is None:
        print(f"SKIP {name}: {why}", flush=True)
    elif ok:
        print(f"PASS {name}", flush=True)
    else:
        print(f"FAIL {name}: {why}", flush=True)


def check(name: str, errs: list[str], wd: str = "") -> None:
    """PASS when errs is empty; else FAIL with the first six errors (and where the files are)."""
    more = f" (+{len(errs) - 6} more)" if len(errs) > 6 else ""
    report(not errs, name, "; ".join(errs[:6]) + more + (f" [files in {wd}]" if wd else ""))
