"""The background stage: procedural backgrounds (`procedural`), diffusion-inpainted scenes (`inpaint`) and the
prompts of the diffusion models (`prompts`)."""
