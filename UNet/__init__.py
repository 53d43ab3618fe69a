"""U-Net (Ronneberger et al. 2015) in the Pytorch-UNet layout of the released u_net_imagenet.pth."""
