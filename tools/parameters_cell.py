# Settings: a form on Colab (change them, then Runtime > Run all); `papermill -p NAME VALUE` sets them too.
# USE_DRIVE: on Colab, keep every output on Google Drive, so that each notebook's runtime finds what the
#   earlier notebooks wrote and training resumes after a disconnect (recommended).
# MVTEC_DIR: the MVTec AD root, or your own product's photos sorted into good/ and one folder per defect type
#   (README: "Your own product"); "" looks in the usual places, else uses the built-in sample data.
# PROFILE: "auto" is full on a GPU and quick on a CPU; full = the published recipes, smoke = CI-sized.
USE_DRIVE = True  #@param {type:"boolean"}
MVTEC_DIR = ""  #@param {type:"string"}
PROFILE = "auto"  #@param ["auto", "full", "quick", "smoke"]
