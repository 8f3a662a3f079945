/* Stylesheets are imported for their effect: Vite bundles them into the page's own CSS file. */
declare module "*.css";
