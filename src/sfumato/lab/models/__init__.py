"""The lab's generative models: the latent-diffusion generator and its training, the text encoder,
the latent spaces (autoencoders) and their latent cache, the base generator's spec.
"""
