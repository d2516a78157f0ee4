"""lctk's own plugin: what the core provides through the same hooks as third parties (the constraint methods
``actor`` and ``diffusion``). It is always loaded, as distribution ``lctk``, whatever ``LCTK_PLUGINS`` says.
References keep `lctk plugins` free of model imports."""

from __future__ import annotations

from lctk.hookspecs import hookimpl

#: The distribution name the built-ins are listed under.
NAME = "lctk"


@hookimpl
def register_constraint_methods(register):
    register("actor", "lctk.engine.constraint:LatentConstraint",
             help="critics and an actor that moves prior draws (Engel et al. 2018); --method optimize climbs its "
                  "critics instead")
    register("diffusion", "lctk.engine.diffusion.method:DiffusionConstraint",
             help="a conditional flow-matching denoiser over the latents with classifier-free guidance (--guidance); "
                  "edits by noising part-way (--strength)")
