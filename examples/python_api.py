"""lctk from Python: a small Fashion-MNIST run, a constraint, samples, an edit and the measures.

    python examples/python_api.py runs/api-demo

Every step is the same as the `lctk` command of the same name (the command line calls these functions).
`tests/test_api.py` runs `main` on a tiny setting.
"""

import sys

from lctk import api


def main(out="runs/api-demo", data="fashion-mnist", data_dir=None, attrs=("sandal", "sneaker"), epochs=2,
         max_examples=20000, steps=1000, n=500, backbone_settings=None, constraint_settings=None):
    """Train (unless ``out`` holds a run), encode, add a constraint for ``attrs``, sample, edit, evaluate."""
    run = api.RunDir(out)
    if not run.config_path.exists():
        api.train_vae(out, backbone="conv", data=data, data_dir=data_dir, epochs=epochs, max_examples=max_examples,
                      overrides=backbone_settings)
    api.encode(run)
    if not (run.constraints_dir / "demo").exists():
        api.add_constraint(run, attrs=list(attrs), name="demo", overrides={"steps": steps, **(constraint_settings or {})})
    first = api.sample(run, attrs=[attrs[0]], n=16, out=f"{out}/api-{attrs[0]}.png")  # (16, C, H, W) in [0, 1]
    print(f"{attrs[0]} samples:", tuple(first.shape))
    # the first two test examples, edited towards the second attribute
    before, after = api.transform(run, test_indices=[0, 1], attrs=[attrs[1]], out=f"{out}/api-to-{attrs[1]}.png")
    print("edited:", tuple(after.shape))
    metrics = api.evaluate(run, n=n)
    print("conditional accuracy (actor):", metrics["conditional"]["actor"]["mean_accuracy"])
    return metrics


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/api-demo")
