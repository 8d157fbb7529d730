"""Ship the four L=2 aspirin backbones from their training runs (maintainers' script).

Copies ``training/aspirin_L2_seed{S}/backbone.pt`` to ``empirical/backbone/shipped/``,
redraws ``docs/learning_curves_aspirin_L2.png`` and rewrites the README table between the
"Shipped (`empirical/backbone/shipped/`" paragraph and "## Layout".

    python training/finalize.py
"""

import shutil
from pathlib import Path

from empirical.backbone import shipped
from empirical.backbone._report import plot_learning_curves

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "empirical" / "backbone" / "shipped"


def main() -> None:
    for s in range(4):
        src = ROOT / "training" / f"aspirin_L2_seed{s}" / "backbone.pt"
        shutil.copyfile(src, SHIPPED / f"aspirin_L2_seed{s}.pt")
    rows = shipped()
    plot_learning_curves([r["path"] for r in rows], ROOT / "docs" / "learning_curves_aspirin_L2.png")
    table = ["| name | L | seed | training frames | epochs | held-out energy MAE [meV] | "
             "held-out force MAE [meV/A] | status |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| {r['name']} | {r['L']} | {r['seed']} | {r['training_frames']} | "
                     f"{r['epochs']} | {r['energy_mae_meV']:.1f} | {r['force_mae_meV_per_A']:.1f} "
                     f"| {r['status']} |")
    readme = (ROOT / "README.md").read_text()
    start = readme.index("| name | L | seed | training frames")
    end = readme.index("\n\n", start)
    readme = readme[:start] + "\n".join(table) + readme[end:]
    (ROOT / "README.md").write_text(readme)
    for r in rows:
        print(r["name"], r["epochs"], f"{r['energy_mae_meV']:.1f}", f"{r['force_mae_meV_per_A']:.1f}")


if __name__ == "__main__":
    main()
