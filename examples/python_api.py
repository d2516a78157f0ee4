"""lctk from Python: a small Fashion-MNIST run, a constraint, samples, an edit and the measures.

    python examples/python_api.py runs/api-demo
"""

import sys

from lctk import api

out = sys.argv[1] if len(sys.argv) > 1 else "runs/api-demo"
run = api.RunDir(out)
if not run.config_path.exists():
    api.train_vae(out, backbone="conv", data="fashion-mnist", epochs=2, max_examples=20000)
api.encode(run)
if "sandal+sneaker" not in [p.name for p in run.constraints_dir.glob("*")]:
    api.add_constraint(run, attrs=["sandal", "sneaker"], overrides={"steps": 1000})
sandals = api.sample(run, attrs=["sandal"], n=16, out=f"{out}/api-sandals.png")  # (16, 1, 28, 28) in [0, 1]
print("sandal samples:", tuple(sandals.shape))
before, after = api.transform(run, indices=[60005, 60006], attrs=["sneaker"], out=f"{out}/api-to-sneaker.png")
print("edited:", tuple(after.shape))
metrics = api.evaluate(run, n=500)
print("conditional accuracy (actor):", metrics["conditional"]["actor"]["mean_accuracy"])
