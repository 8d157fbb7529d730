"""Ship the trained backbones from their training runs (maintainers' script).

Copies ``training/aspirin_L2_seed{S}/backbone.pt`` to ``empirical/backbone/shipped/`` and
``training/controls/<name>/backbone.pt`` (the control backbones of
``empirical.calibration.CONTROL_BACKBONES``, where trained) xz-compressed to
``empirical/backbone/shipped/controls/<name>.pt.xz``, redraws ``docs/learning_curves_aspirin_L2.png``
and ``docs/learning_curves_controls.png`` and rewrites the README's backbone table (the
table that starts with "| name | role |").

    python training/finalize.py
"""

import shutil
from pathlib import Path

from empirical.backbone import compress_checkpoint, plot_learning_curves, shipped
from empirical.controls import CONTROL_BACKBONES

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "empirical" / "backbone" / "shipped"


def main() -> None:
    for s in range(4):
        src = ROOT / "training" / f"aspirin_L2_seed{s}" / "backbone.pt"
        shutil.copyfile(src, SHIPPED / f"aspirin_L2_seed{s}.pt")
    (SHIPPED / "controls").mkdir(exist_ok=True)
    for name in CONTROL_BACKBONES:
        src = ROOT / "training" / "controls" / name / "backbone.pt"
        if src.is_file():
            compress_checkpoint(src, SHIPPED / "controls" / f"{name}.pt.xz")
    rows = shipped()
    for role, png in (("diagnostic", "learning_curves_aspirin_L2.png"),
                      ("control", "learning_curves_controls.png")):
        paths = [r["path"] for r in rows if r["role"] == role]
        if paths:
            plot_learning_curves(paths, ROOT / "docs" / png)
    table = ["| name | role | L | channels | gate | seed | training frames | epochs | "
             "held-out energy MAE [meV] | held-out force MAE [meV/A] | size [MB] | status |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        size = Path(r["path"]).stat().st_size / 1e6
        table.append(f"| {r['name']} | {r['role']} | {r['L']} | {r['channels']} | "
                     f"{r['activation']} | {r['seed']} | {r['training_frames']} | "
                     f"{r['epochs']} | {r['energy_mae_meV']:.1f} | "
                     f"{r['force_mae_meV_per_A']:.1f} | {size:.2f} | {r['status']} |")
    readme = (ROOT / "README.md").read_text()
    start = readme.index("| name | ")
    end = readme.index("\n\n", start)
    readme = readme[:start] + "\n".join(table) + readme[end:]
    (ROOT / "README.md").write_text(readme)
    for r in rows:
        print(r["name"], r["epochs"], f"{r['energy_mae_meV']:.1f}",
              f"{r['force_mae_meV_per_A']:.1f}")


if __name__ == "__main__":
    main()
